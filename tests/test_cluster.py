"""``--expect cluster``: reading the routing objects from the Kubernetes API.

No API server can run here, so these tests use a STAND-IN: a LocalServer on 127.0.0.1 that answers the
list requests respy makes with list responses built from the tutorial's manifests (read in place from the
shared fixtures), the way the API server shapes them (items without kind/apiVersion, server-set metadata,
pages with a ``continue`` token, 401 without the right token, 403/404 where told to). The service-account
token and CA are files in a tmp dir; the API URL is overridden to the stand-in's plain-HTTP address (in a
pod respy uses https with the pod's CA).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from support import run_cli, stochastic, weighted_handler

from respy._errors import ClusterError
from respy.demo.localserver import LocalServer, Request, Response
from respy.rules.cluster import (
    ENV_API_URL,
    ENV_SERVICEACCOUNT_DIR,
    RESOURCES,
    cluster_access,
    fetch_cluster_objects,
    host_namespace,
    load_cluster,
    read_cluster,
)

TOKEN = "stand-in-token-do-not-print"
NAMESPACE = "default"
PAGE = 2  # the stand-in pages after 2 items, so that `continue` is exercised
TUTORIAL_FILES = ("weather-rules.yaml", "weather-deployment.yaml")
PLURALS = {r.kind: r for r in RESOURCES}


@dataclass
class StandInApi:
    """What the stand-in serves: objects per (group, plural), which versions exist, what is forbidden."""

    objects: dict[tuple[str, str], list[dict[str, Any]]]
    versions: dict[str, tuple[str, ...]] = field(default_factory=lambda: {
        "networking.istio.io": ("v1", "v1beta1"), "": ("v1",), "apps": ("v1",)})  # no Gateway API installed
    forbidden: set[str] = field(default_factory=set)
    seen: list[str] = field(default_factory=list)

    async def __call__(self, request: Request) -> Response:
        parts = urlsplit(request.path)
        self.seen.append(parts.path)
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return _status(401, "Unauthorized")
        group, version, namespace, plural = _route(parts.path)
        if plural is None or version not in self.versions.get(group, ()):
            return _status(404, "the server could not find the requested resource")
        if plural in self.forbidden:
            return _status(403, f'{plural} is forbidden: User "system:serviceaccount:{namespace}:respy" cannot list')
        items = [o for o in self.objects.get((group, plural), []) if o["metadata"]["namespace"] == namespace]
        start = int(parse_qs(parts.query).get("continue", ["0"])[0])
        page = items[start:start + PAGE]
        more = {"continue": str(start + PAGE)} if start + PAGE < len(items) else {}
        kind = next(r.kind for r in RESOURCES if r.plural == plural)
        body = {"kind": f"{kind}List", "apiVersion": f"{group}/{version}" if group else version,
                "metadata": {"resourceVersion": "42", **more}, "items": page}
        return Response(200, json.dumps(body).encode(), [("Content-Type", "application/json")])


def _route(path: str) -> tuple[str, str, str, str | None]:
    segments = path.strip("/").split("/")
    if segments[:1] == ["api"] and len(segments) == 5:
        return "", segments[1], segments[3], segments[4]
    if segments[:1] == ["apis"] and len(segments) == 6:
        return segments[1], segments[2], segments[4], segments[5]
    return "", "", "", None


def _status(code: int, message: str) -> Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code}
    return Response(code, json.dumps(body).encode(), [("Content-Type", "application/json")])


def tutorial_documents(fixtures_dir: Path) -> list[dict[str, Any]]:
    docs = []
    for name in TUTORIAL_FILES:
        text = (fixtures_dir / "tutorial" / name).read_text(encoding="utf-8")
        docs += [d for d in yaml.safe_load_all(text) if d and d["kind"] in PLURALS]
    return docs


def as_list_item(doc: dict[str, Any], index: int) -> dict[str, Any]:
    """What a list response holds for an applied manifest: no kind/apiVersion, server-set metadata."""
    item = {k: v for k, v in doc.items() if k not in ("kind", "apiVersion")}
    item["metadata"] = {**doc["metadata"], "namespace": NAMESPACE, "uid": f"uid-{index}", "resourceVersion": "7",
                        "managedFields": [{"manager": "kubectl", "operation": "Update"}]}
    return item


@pytest.fixture
def api(fixtures_dir: Path) -> StandInApi:
    objects: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for index, doc in enumerate(tutorial_documents(fixtures_dir)):
        resource = PLURALS[doc["kind"]]
        objects.setdefault((resource.group, resource.plural), []).append(as_list_item(doc, index))
    return StandInApi(objects)


@pytest.fixture
def serviceaccount(tmp_path: Path) -> Path:
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    (directory / "token").write_text(TOKEN + "\n", encoding="utf-8")
    (directory / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n(stand-in)\n-----END CERTIFICATE-----\n",
                                      encoding="utf-8")
    (directory / "namespace").write_text(NAMESPACE, encoding="utf-8")
    return directory


@pytest.fixture
def server(api: StandInApi) -> Iterator[LocalServer]:
    with LocalServer(api) as running:
        yield running


def access_to(server: LocalServer, serviceaccount: Path):  # type: ignore[no-untyped-def]
    return cluster_access(serviceaccount_dir=serviceaccount, api_url=server.url, env={})


def comparable(doc: dict[str, Any]) -> tuple[str, str, str, str]:
    group = doc["apiVersion"].rpartition("/")[0]
    return doc["kind"], group, doc["metadata"]["name"], json.dumps(doc.get("spec"), sort_keys=True)


def test_reads_the_tutorials_objects_as_the_files_declare_them(
    fixtures_dir: Path, server: LocalServer, serviceaccount: Path
) -> None:
    objects = fetch_cluster_objects(access=access_to(server, serviceaccount))
    expected = tutorial_documents(fixtures_dir)
    assert sorted(map(comparable, objects)) == sorted(map(comparable, expected))
    for obj in objects:
        resource = PLURALS[obj["kind"]]
        assert obj["apiVersion"] == resource.api_version(resource.versions[0])  # current version, not v1alpha3
        assert obj["metadata"]["namespace"] == NAMESPACE
        assert "managedFields" not in obj["metadata"]
    assert {o["kind"] for o in objects} == {"VirtualService", "DestinationRule", "Gateway", "Service", "Deployment"}
    assert len([o for o in objects if o["kind"] == "Deployment"]) == 3  # two pages of the stand-in


def test_a_kind_whose_crd_is_not_installed_is_skipped(server: LocalServer, serviceaccount: Path) -> None:
    read = read_cluster(access=access_to(server, serviceaccount))
    assert read.skipped == ["HTTPRoute (httproutes.gateway.networking.k8s.io: not installed)",
                            "ReferenceGrant (referencegrants.gateway.networking.k8s.io: not installed)"]


def test_istio_v1beta1_when_the_server_has_no_v1(
    api: StandInApi, server: LocalServer, serviceaccount: Path
) -> None:
    api.versions["networking.istio.io"] = ("v1beta1",)
    objects = fetch_cluster_objects(access=access_to(server, serviceaccount))
    istio = [o for o in objects if o["kind"] in ("VirtualService", "DestinationRule")]
    assert len(istio) == 3
    assert {o["apiVersion"] for o in istio} == {"networking.istio.io/v1beta1"}
    assert "/apis/networking.istio.io/v1/namespaces/default/virtualservices" in api.seen


def test_forbidden_names_the_missing_permission(api: StandInApi, server: LocalServer, serviceaccount: Path) -> None:
    api.forbidden.add("virtualservices")
    with pytest.raises(ClusterError) as caught:
        fetch_cluster_objects(access=access_to(server, serviceaccount))
    assert str(caught.value) == ("forbidden: the service account cannot list virtualservices.networking.istio.io "
                                 "in namespace default; apply k8s/rbac.yaml")
    assert caught.value.exit_code == 2


def test_a_wrong_token_is_unauthorized_and_never_printed(server: LocalServer, serviceaccount: Path) -> None:
    (serviceaccount / "token").write_text("another-secret-token", encoding="utf-8")
    access = access_to(server, serviceaccount)
    assert "another-secret-token" not in repr(access)
    with pytest.raises(ClusterError) as caught:
        fetch_cluster_objects(access=access)
    assert "unauthorized" in str(caught.value) and "another-secret-token" not in str(caught.value)


@pytest.fixture
def in_pod(server: LocalServer, serviceaccount: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment of a pod, pointed at the stand-in through respy's override variables."""
    monkeypatch.setenv(ENV_API_URL, server.url)
    monkeypatch.setenv(ENV_SERVICEACCOUNT_DIR, str(serviceaccount))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")


@stochastic
@pytest.mark.usefixtures("in_pod")
def test_expect_cluster_end_to_end_passes_a_90_10_backend() -> None:
    bodies = {"weather-backend: single": 9, "weather-backend: multiple": 1}
    with LocalServer(weighted_handler(bodies, seed=5)) as backend:
        result = run_cli(backend.url, "-n", "600", "-c", "5", "-H", "Host: weather-backend", "--expect", "cluster",
                         "-o", "json", "-q")
    assert result.code == 0, result.err
    data = result.json()
    assert data["verdict"]["outcome"] == "PASS"
    assert {e["outcome"]: e["probability"] for e in data["expected"]} == {"single": 0.9, "multiple": 0.1}
    assert TOKEN not in result.out + result.err


@pytest.mark.usefixtures("in_pod")
def test_expect_cluster_forbidden_exits_2_with_one_line(api: StandInApi) -> None:
    api.forbidden.add("destinationrules")
    with LocalServer(weighted_handler({"weather-backend: single": 1}, seed=1)) as backend:
        result = run_cli(backend.url, "-n", "10", "-H", "Host: weather-backend", "--expect", "cluster")
        assert backend.stats.requests == 0  # the rules fail before any request is sent
    assert result.code == 2
    assert result.err.strip() == ("respy: error: forbidden: the service account cannot list "
                                  "destinationrules.networking.istio.io in namespace default; apply k8s/rbac.yaml")
    assert TOKEN not in result.out + result.err


def test_outside_a_pod_is_a_clear_error(serviceaccount: Path) -> None:
    with pytest.raises(ClusterError) as caught:
        cluster_access(serviceaccount_dir=serviceaccount, env={})
    assert str(caught.value).startswith(
        "--expect cluster needs to run inside a pod: KUBERNETES_SERVICE_HOST is not set")


def test_outside_a_pod_through_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KUBERNETES_SERVICE_HOST", ENV_API_URL, ENV_SERVICEACCOUNT_DIR):
        monkeypatch.delenv(name, raising=False)
    result = run_cli("http://127.0.0.1:9/version", "-n", "10", "--expect", "cluster")
    assert result.code == 2
    assert "KUBERNETES_SERVICE_HOST is not set" in result.err and len(result.err.strip().splitlines()) == 1


def test_in_a_pod_the_api_is_https_with_the_pod_ca(serviceaccount: Path) -> None:
    access = cluster_access(serviceaccount_dir=serviceaccount,
                            env={"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"})
    assert access.api_url == "https://10.96.0.1:443"
    assert access.ca_file == str(serviceaccount / "ca.crt")
    assert access.namespace == NAMESPACE
    ipv6 = cluster_access(serviceaccount_dir=serviceaccount, env={"KUBERNETES_SERVICE_HOST": "fd00::1"})
    assert ipv6.api_url == "https://[fd00::1]:443"
    assert cluster_access("prod", serviceaccount_dir=serviceaccount, env={"KUBERNETES_SERVICE_HOST": "h"}).namespace \
        == "prod"


def test_missing_token_or_ca_is_a_clear_error(serviceaccount: Path) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}
    (serviceaccount / "ca.crt").unlink()
    with pytest.raises(ClusterError, match="no cluster CA"):
        cluster_access(serviceaccount_dir=serviceaccount, env=env)
    (serviceaccount / "token").unlink()
    with pytest.raises(ClusterError, match="cannot read the service-account token"):
        cluster_access(serviceaccount_dir=serviceaccount, env=env)


def test_load_cluster_builds_a_ruleset(server: LocalServer, serviceaccount: Path) -> None:
    rules = load_cluster(access=access_to(server, serviceaccount))
    kinds = sorted(o.kind for o in rules.objects)
    assert kinds == ["Deployment"] * 3 + ["DestinationRule", "Gateway", "Service", "Service", "VirtualService",
                                         "VirtualService"]
    (backend_vs,) = [o for o in rules.objects if o.name == "vs-weather-backend"]
    assert backend_vs.file == "cluster:default" and backend_vs.namespace == NAMESPACE
    assert any("HTTPRoute" in w for w in rules.warnings)


def test_files_given_with_cluster_replace_the_cluster_objects(
    server: LocalServer, serviceaccount: Path, tmp_path: Path
) -> None:
    changed = tmp_path / "vs.yaml"
    changed.write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs-weather-backend, "
        "namespace: default}\nspec:\n  hosts: [weather-backend]\n  http:\n  - route:\n"
        "    - destination: {host: weather-backend, subset: single}\n", encoding="utf-8")
    rules = load_cluster(access=access_to(server, serviceaccount), extra=[str(changed)])
    (backend_vs,) = [o for o in rules.objects if o.name == "vs-weather-backend"]
    assert backend_vs.file == str(changed)


@pytest.mark.parametrize(
    ("url", "headers", "namespace"),
    [
        ("http://weather-backend:5000/version", None, None),
        ("http://reviews.prod:9080/", None, "prod"),
        ("http://reviews.prod.svc.cluster.local:9080/", None, "prod"),
        ("http://127.0.0.1:8080/", {"Host": "reviews.bookinfo.svc"}, "bookinfo"),
        ("https://example.com/", None, None),
        ("http://10.0.0.1/", None, None),
    ],
)
def test_host_namespace(url: str, headers: dict[str, str] | None, namespace: str | None) -> None:
    assert host_namespace(url, headers) == namespace


def _make_ca_and_server_cert(directory: Path, name: str) -> tuple[Path, Path, Path]:
    """A CA and a certificate for 127.0.0.1 signed by it, made with the openssl command line."""
    import subprocess

    ca_key, ca_crt = directory / f"{name}-ca.key", directory / f"{name}-ca.crt"
    key, csr, crt = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.crt"
    ext = directory / f"{name}.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n", encoding="utf-8")
    for argv in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_crt, "-days", "1",
         "-subj", f"/CN={name} stand-in CA"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-out", crt, "-days", "1",
         "-extfile", ext],
    ):
        subprocess.run(["openssl", *map(str, argv)], check=True, capture_output=True, timeout=60)
    return ca_crt, crt, key


@pytest.fixture
def tls_api(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """A stand-in API over https (empty lists), its CA, and an unrelated CA."""
    import shutil
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the stand-in's certificates")
    ca, cert, key = _make_ca_and_server_cert(tmp_path, "cluster")
    other_ca, _, _ = _make_ca_and_server_cert(tmp_path, "other")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.headers.get("Authorization") == f"Bearer {TOKEN}"
            body = json.dumps({"kind": "List", "metadata": {}, "items": []} if ok else {"code": 401}).encode()
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}", ca, other_ca
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_https_api_is_verified_against_the_pod_ca(tls_api: tuple[str, Path, Path], serviceaccount: Path) -> None:
    url, ca, other_ca = tls_api
    (serviceaccount / "ca.crt").write_bytes(ca.read_bytes())
    assert fetch_cluster_objects(access=cluster_access(serviceaccount_dir=serviceaccount, api_url=url, env={})) == []
    (serviceaccount / "ca.crt").write_bytes(other_ca.read_bytes())
    with pytest.raises(ClusterError, match="cannot reach the Kubernetes API") as caught:
        fetch_cluster_objects(access=cluster_access(serviceaccount_dir=serviceaccount, api_url=url, env={}))
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value) or "certificate" in str(caught.value).lower()


def test_the_istio_version_is_read_from_istiods_image_when_allowed(serviceaccount: Path) -> None:
    # a stand-in API server (no Kubernetes here): istiod's Deployment in istio-system, image tag 1.22.3
    from respy.rules.cluster import ISTIOD_PATH, istio_version_of

    async def handler(request: Request) -> Response:
        if request.path != ISTIOD_PATH:
            return _status(404, "not found")
        body = {"spec": {"template": {"spec": {"containers": [
            {"name": "discovery", "image": "docker.io/istio/pilot:1.22.3-distroless"}]}}}}
        return Response(200, json.dumps(body).encode(), [("Content-Type", "application/json")])

    with LocalServer(handler) as server:
        assert istio_version_of(access_to(server, serviceaccount)) == (1, 22)


def test_the_istio_version_is_unknown_when_istiod_cannot_be_read(server: LocalServer, serviceaccount: Path) -> None:
    from respy.rules.cluster import istio_version_of

    assert istio_version_of(access_to(server, serviceaccount)) is None
