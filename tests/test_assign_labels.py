"""Labels -> declared outcomes: whole tokens, distinguishing identifiers, --map, status outcomes."""

from __future__ import annotations

import pytest

from respy._errors import MappingError
from respy.check.assign import assign, attribute_errors, distinguishing_identifiers, match_destination, token_pattern
from respy.rules.expectation import Expectation, Outcome
from respy.tally import Kind, Row


def ok(label: str, count: int) -> Row:
    return Row(label, count, Kind.OK, 200)


def expectation(*outcomes: Outcome) -> Expectation:
    return Expectation(outcomes=outcomes, host="weather-backend")


WEATHER = expectation(
    Outcome("single", 0.9, ("single", "weather-backend")),
    Outcome("multiple", 0.1, ("multiple", "weather-backend")),
)


@pytest.mark.parametrize(
    ("identifier", "label", "found"),
    [
        ("single", "weather-backend: single", True),
        ("single", "weather-backend: singleton", False),
        ("single", "weather-backend: single\n", True),
        ("v1", "Hello version: v1, instance: helloworld-v1-77cb56d4b4-7gq6r", True),
        ("v1", "Hello version: v10", False),
        ("v1", "version v1.", True),
        ("v1", "version v1.2", False),
        ("v1", "reviews-v1-abc", False),
        ("v2", '{"version":"v2"}', True),
        ("V2", "version: v2", True),
        ("weather-backend", "weather-backend: single", True),
        ("backend", "weather-backend: single", False),
    ],
)
def test_whole_token_matching(identifier: str, label: str, found: bool) -> None:
    assert bool(token_pattern(identifier).search(label)) is found


def test_a_2xx_label_goes_to_the_destination_it_names() -> None:
    result = assign([ok("weather-backend: single", 900), ok("weather-backend: multiple", 100)], WEATHER)
    assert result.counts == {"single": 900, "multiple": 100}
    assert result.claimed == {"weather-backend: single": "single", "weather-backend: multiple": "multiple"}
    assert result.undeclared == {} and result.unknown == 0 and result.total == 1000


def test_identifiers_shared_by_every_destination_name_none() -> None:
    ids = distinguishing_identifiers(WEATHER.destinations)
    assert ids == {"single": ("single",), "multiple": ("multiple",)}
    # "weather-backend" appears in both: on its own it claims nothing.
    result = assign([ok("weather-backend: triple", 7)], WEATHER)
    assert result.undeclared == {"weather-backend: triple": 7}
    assert result.counts == {"single": 0, "multiple": 0}


def test_an_identifier_owned_by_one_destination_beats_one_shared_by_some() -> None:
    ids = {"a": ("v1", "stable"), "b": ("v2", "canary"), "c": ("v3", "canary")}
    assert match_destination("canary v2", ids) == "b"
    with pytest.raises(MappingError, match="canary"):
        match_destination("canary", ids)


def test_a_label_naming_several_destinations_is_a_mapping_error() -> None:
    with pytest.raises(MappingError) as caught:
        assign([ok("single and multiple", 3)], WEATHER)
    message = str(caught.value)
    assert "'single and multiple'" in message and "multiple, single" in message and "--map" in message
    assert caught.value.exit_code == 2


def test_map_comes_first() -> None:
    rows = [ok("single and multiple", 3), ok("weather-backend: single", 5), ok("mystery", 2)]
    result = assign(rows, WEATHER, {"single and multiple": "multiple", "weather-backend: single": "multiple"})
    assert result.counts == {"single": 0, "multiple": 8}
    assert result.undeclared == {"mystery": 2}


def test_map_to_an_undeclared_outcome_is_a_mapping_error() -> None:
    with pytest.raises(MappingError, match="triple"):
        assign([ok("x", 1)], WEATHER, {"x": "triple"})


def test_status_outcomes_claim_non_2xx_rows_with_their_status() -> None:
    faulty = expectation(
        Outcome("v1", 0.45, ("v1",)),
        Outcome("v2", 0.45, ("v2",)),
        Outcome("abort 500", 0.1, status=500),
    )
    rows = [
        ok("version v1", 40),
        ok("version v2", 45),
        Row("500 fault filter abort", 10, Kind.HTTP_ERROR, 500),
        Row("503 upstream connect error", 3, Kind.HTTP_ERROR, 503),
        Row("error: timeout", 2, Kind.TRANSPORT, None),
    ]
    result = assign(rows, faulty)
    assert result.counts == {"v1": 40, "v2": 45, "abort 500": 10}
    assert result.unknown == 5
    assert result.unknown_labels == {"503 upstream connect error": 3, "error: timeout": 2}
    assert result.total == 100


def test_status_is_read_from_the_label_when_the_row_has_none() -> None:
    faulty = expectation(Outcome("v1", 0.5, ("v1",)), Outcome("abort", 0.5, status=503))
    result = assign([Row("503 service unavailable", 4, Kind.HTTP_ERROR, None)], faulty)
    assert result.counts["abort"] == 4


def test_an_error_naming_its_destination_is_attributed_to_it_apart_from_the_answers() -> None:
    result = assign([Row("500 single is broken", 4, Kind.HTTP_ERROR, 500), Row("503 no upstream", 2, Kind.HTTP_ERROR,
                                                                               503)], WEATHER)
    assert result.counts == {"single": 0, "multiple": 0}  # answers: errors are not answers of the version
    assert result.errors == {"single": 4}  # but the request was routed to it
    assert result.unknown == 2 and result.unknown_labels == {"503 no upstream": 2}


def test_envoy_counters_can_attribute_the_remaining_errors() -> None:
    result = assign([Row("503 no upstream", 5, Kind.HTTP_ERROR, 503)], WEATHER)
    moved = attribute_errors(result, {"multiple": 3, "nowhere": 9})
    assert moved.errors == {"multiple": 3} and moved.unknown == 2


def test_weight_zero_destinations_are_counted_so_they_can_be_named() -> None:
    legacy = expectation(Outcome("v1", 1.0, ("v1",)), Outcome("v0", 0.0, ("v0",)))
    result = assign([ok("v1", 10), ok("v0", 2)], legacy)
    assert result.counts == {"v1": 10, "v0": 2}
