"""``--connect-to HOST:PORT:ADDR:PORT2`` (curl's meaning): which requests it rewrites, and how."""

from __future__ import annotations

import httpx
import pytest
from support import run_cli

from respy._errors import UsageError
from respy.send.connect_to import ConnectTo, connect_request


def test_the_request_keeps_its_host_and_tls_name_and_dials_elsewhere() -> None:
    rule = ConnectTo.parse("weather-backend:443:127.0.0.1:8443")
    request = connect_request(httpx.Request("GET", "https://weather-backend/version"), rule)
    assert str(request.url) == "https://127.0.0.1:8443/version"
    assert request.headers["host"] == "weather-backend"
    assert request.extensions["sni_hostname"] == "weather-backend"  # TLS is verified against the service's name


def test_other_hosts_and_ports_are_left_alone_and_empty_parts_match_any() -> None:
    rule = ConnectTo.parse("weather-backend:5000:127.0.0.1:8080")
    other = httpx.Request("GET", "http://weather-backend:5001/")
    assert connect_request(other, rule) is other
    anything = ConnectTo.parse("::[::1]:9000")
    assert str(connect_request(other, anything).url) == "http://[::1]:9000/"


@pytest.mark.parametrize("value", ["weather-backend:5000", "a:b:c:d", "a:5000:b:70000"])
def test_bad_values_are_usage_errors(value: str) -> None:
    with pytest.raises(UsageError, match="--connect-to"):
        ConnectTo.parse(value)


def test_a_bad_value_on_the_command_line_is_exit_2() -> None:
    result = run_cli("http://weather-backend:5000/", "--connect-to", "nonsense")
    assert result.code == 2 and "HOST:PORT:ADDR:PORT2" in result.err and "Traceback" not in result.err
