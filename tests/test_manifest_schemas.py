"""Every Kubernetes manifest the project ships (k8s/, examples/) against the real Kubernetes schemas.

``kubernetes-validate`` carries the OpenAPI schemas of each Kubernetes release; ``strict`` also rejects
fields the schema does not know (a misspelt ``securityContext`` key is silently ignored by the API server
on apply with older clients, and by this check never). It has no schemas for CRDs: Istio's kinds
(VirtualService, DestinationRule) are listed, not validated, and the test says so by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = sorted([*ROOT.glob("k8s/*.yaml"), *ROOT.glob("examples/**/*.yaml")])
KUBERNETES_VERSION = kubernetes_validate.latest_version()
CRD_GROUPS = ("networking.istio.io/", "gateway.networking.k8s.io/")  # no schema shipped for these


def documents(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc]


def is_crd(doc: dict[str, Any]) -> bool:
    return str(doc.get("apiVersion", "")).startswith(CRD_GROUPS)


def test_there_are_manifests_to_check() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in MANIFESTS}
    assert {"k8s/respy.yaml", "k8s/job.yaml", "k8s/parallel-job.yaml", "k8s/rbac.yaml"} <= names


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_each_manifest_is_valid_against_the_kubernetes_schema(path: Path) -> None:
    checked = 0
    for doc in documents(path):
        if is_crd(doc):
            continue
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        checked += 1
    if checked == 0:
        pytest.skip(f"{path.name} holds only CRDs ({', '.join(sorted({d['kind'] for d in documents(path)}))}): "
                    "kubernetes-validate has no schema for them")


def test_the_check_fails_on_a_misspelt_field() -> None:
    """The validation above can fail: an unknown field and a wrong type are caught."""
    (deployment,) = [d for d in documents(ROOT / "k8s" / "respy.yaml") if d["kind"] == "Deployment"]
    misspelt = yaml.safe_load(yaml.safe_dump(deployment))
    misspelt["spec"]["template"]["spec"]["securityContex"] = {"runAsNonRoot": True}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, KUBERNETES_VERSION, strict=True)
    wrong_type = yaml.safe_load(yaml.safe_dump(deployment))
    wrong_type["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, KUBERNETES_VERSION, strict=True)
