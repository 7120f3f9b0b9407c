"""``--expect cluster``: read the routing objects from the Kubernetes API, as the pod's service account.

Inside a pod the API is at ``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT``, verified with the
pod's CA, and the service account's token, CA and namespace are files under
``/var/run/secrets/kubernetes.io/serviceaccount``. Two environment variables override that, for tests and
for running next to a proxy: ``RESPY_SERVICEACCOUNT_DIR`` (where token, ca.crt and namespace are) and
``RESPY_KUBERNETES_API`` (the API base URL; plain http is accepted there only). The read is list-only
(k8s/rbac.yaml grants get/list/watch and nothing else), and the token is never printed.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from respy._errors import ClusterError, RulesError, UsageError

if TYPE_CHECKING:
    from respy.rules.load import K8sObject, RuleSet

SERVICEACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
ENV_SERVICEACCOUNT_DIR = "RESPY_SERVICEACCOUNT_DIR"
ENV_API_URL = "RESPY_KUBERNETES_API"
PAGE_SIZE = 500
TIMEOUT_S = 10.0
RBAC_HINT = "apply k8s/rbac.yaml"


@dataclass(frozen=True)
class Resource:
    """A kind respy reads, and the API versions to try in order (404 on all: not installed, skipped)."""

    kind: str
    plural: str
    group: str  # "" for the core API
    versions: tuple[str, ...]

    @property
    def qualified(self) -> str:
        """``virtualservices.networking.istio.io``, as RBAC and kubectl name it (``services`` for core)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    def path(self, version: str, namespace: str) -> str:
        prefix = f"/apis/{self.group}/{version}" if self.group else f"/api/{version}"
        return f"{prefix}/namespaces/{namespace}/{self.plural}"


RESOURCES: tuple[Resource, ...] = (
    Resource("VirtualService", "virtualservices", "networking.istio.io", ("v1", "v1beta1")),
    Resource("DestinationRule", "destinationrules", "networking.istio.io", ("v1", "v1beta1")),
    Resource("HTTPRoute", "httproutes", "gateway.networking.k8s.io", ("v1", "v1beta1")),
    Resource("Gateway", "gateways", "networking.istio.io", ("v1", "v1beta1")),
    Resource("Sidecar", "sidecars", "networking.istio.io", ("v1", "v1beta1")),
    Resource("ReferenceGrant", "referencegrants", "gateway.networking.k8s.io", ("v1beta1",)),
    Resource("Service", "services", "", ("v1",)),
    # the workloads, so each destination is expanded to its pods (Service selector ∧ subset labels)
    Resource("Deployment", "deployments", "apps", ("v1",)),
    Resource("StatefulSet", "statefulsets", "apps", ("v1",)),
)


@dataclass(frozen=True)
class ClusterAccess:
    """Where the API is and how to authenticate to it. ``token`` is kept out of ``repr``."""

    api_url: str
    namespace: str
    token: str = field(repr=False)
    ca_file: str | None = None


@dataclass
class ClusterRead:
    """What was read: objects as plain dicts (like YAML documents), and the kinds that are not installed."""

    objects: list[dict[str, Any]]
    namespace: str
    skipped: list[str] = field(default_factory=list)


def cluster_access(
    namespace: str | None = None,
    *,
    serviceaccount_dir: str | os.PathLike[str] | None = None,
    api_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ClusterAccess:
    """The pod's API endpoint, token, CA and namespace; parameters win over the environment."""
    env = os.environ if env is None else env
    base = Path(serviceaccount_dir or env.get(ENV_SERVICEACCOUNT_DIR) or SERVICEACCOUNT_DIR)
    override = api_url or env.get(ENV_API_URL)
    if override and not override.startswith(("https://", "http://")):
        raise ClusterError(f"--expect cluster: {ENV_API_URL} must be an http(s) URL, got {override!r}")
    url = override or _in_cluster_url(env)
    token = _read_secret_file(base / "token", "service-account token")
    ca_file = base / "ca.crt"
    if not override and not ca_file.is_file():
        raise ClusterError(f"--expect cluster: no cluster CA at {ca_file}: is the service-account volume mounted?")
    return ClusterAccess(
        api_url=url.rstrip("/"),
        namespace=namespace or _namespace_file(base) or "default",
        token=token,
        ca_file=str(ca_file) if ca_file.is_file() else None,
    )


def _in_cluster_url(env: Mapping[str, str]) -> str:
    host = env.get("KUBERNETES_SERVICE_HOST")
    if not host:
        raise ClusterError(
            "--expect cluster needs to run inside a pod: KUBERNETES_SERVICE_HOST is not set. Outside the cluster, "
            "pipe the objects in: kubectl get virtualservice,destinationrule,httproute,service,deployment -o yaml "
            "| respy URL --expect -"
        )
    port = env.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return f"https://{host}:{port}"


def _read_secret_file(path: Path, what: str) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ClusterError(
            f"--expect cluster: cannot read the {what} at {path} ({exc.strerror or type(exc).__name__}): "
            "the pod needs a service account with its token mounted (serviceAccountName: respy, k8s/rbac.yaml)"
        ) from None
    if not text:
        raise ClusterError(f"--expect cluster: the {what} at {path} is empty")
    return text


def _namespace_file(base: Path) -> str | None:
    try:
        return (base / "namespace").read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def open_client(access: ClusterAccess, timeout: float = TIMEOUT_S) -> httpx.Client:
    """An httpx client that sends the token and verifies the API server against the pod's CA."""
    verify: ssl.SSLContext | bool = True
    if access.ca_file and access.api_url.startswith("https://"):
        try:
            verify = ssl.create_default_context(cafile=access.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ClusterError(f"--expect cluster: cannot load the cluster CA {access.ca_file}: {exc}") from None
    return httpx.Client(
        base_url=access.api_url,
        headers={"Authorization": f"Bearer {access.token}", "Accept": "application/json"},
        verify=verify,
        timeout=timeout,
        trust_env=False,  # never send the token through an HTTP(S)_PROXY from the environment
    )


def fetch_cluster_objects(
    namespace: str | None = None,
    *,
    access: ClusterAccess | None = None,
    resources: Sequence[Resource] = RESOURCES,
    timeout: float = TIMEOUT_S,
) -> list[dict[str, Any]]:
    """Every VirtualService, DestinationRule, HTTPRoute, Service and Deployment of the namespace, as dicts.

    Each dict is what ``kubectl get -o yaml`` shows for one object (kind and apiVersion set, no managedFields).
    A kind whose CRD is not installed is skipped; 403 and other failures raise ``ClusterError``.
    """
    return read_cluster(namespace, access=access, resources=resources, timeout=timeout).objects


def read_cluster(
    namespace: str | None = None,
    *,
    access: ClusterAccess | None = None,
    resources: Sequence[Resource] = RESOURCES,
    timeout: float = TIMEOUT_S,
) -> ClusterRead:
    """Like ``fetch_cluster_objects``, also saying which kinds were skipped as not installed."""
    access = access or cluster_access(namespace)
    ns = namespace or access.namespace
    read = ClusterRead(objects=[], namespace=ns)
    with open_client(access, timeout) as client:
        for resource in resources:
            items = _list_resource(client, resource, ns)
            if items is None:
                read.skipped.append(f"{resource.kind} ({resource.qualified}: not installed)")
            else:
                read.objects.extend(items)
    return read


def _list_resource(client: httpx.Client, resource: Resource, namespace: str) -> list[dict[str, Any]] | None:
    """The objects of one kind, from the first API version the server has; None when it has none."""
    for version in resource.versions:
        try:
            return list(_pages(client, resource, version, namespace))
        except _NotFoundError:
            continue
    return None


class _NotFoundError(Exception):
    """The API version (or the whole CRD) does not exist on this server."""


def _pages(client: httpx.Client, resource: Resource, version: str, namespace: str) -> Iterator[dict[str, Any]]:
    path = resource.path(version, namespace)
    params: dict[str, str | int] = {"limit": PAGE_SIZE}
    while True:
        body = _get_json(client, path, params, resource, namespace)
        items = body.get("items")
        if not isinstance(items, list):
            raise ClusterError(f"Kubernetes API: GET {path} did not answer a list (no `items`)")
        for item in items:
            if isinstance(item, dict):
                yield as_document(item, resource.kind, resource.api_version(version))
        token = (body.get("metadata") or {}).get("continue")
        if not token:
            return
        params = {"limit": PAGE_SIZE, "continue": token}


def _get_json(
    client: httpx.Client, path: str, params: Mapping[str, str | int], resource: Resource, namespace: str
) -> dict[str, Any]:
    try:
        response = client.get(path, params=params)
    except httpx.HTTPError as exc:
        raise ClusterError(f"cannot reach the Kubernetes API at {client.base_url}: {_reason(exc)}") from None
    if response.status_code == 404:
        raise _NotFoundError(path)
    if response.status_code == 403:
        raise ClusterError(
            f"forbidden: the service account cannot list {resource.qualified} in namespace {namespace}; {RBAC_HINT}"
        )
    if response.status_code == 401:
        raise ClusterError("unauthorized: the Kubernetes API refused the service-account token (expired or revoked?)")
    if response.status_code != 200:
        raise ClusterError(f"Kubernetes API answered {response.status_code} to GET {path}: {_status_message(response)}")
    try:
        body = response.json()
    except ValueError:
        raise ClusterError(f"Kubernetes API: GET {path} did not answer JSON") from None
    if not isinstance(body, dict):
        raise ClusterError(f"Kubernetes API: GET {path} did not answer a JSON object")
    return body


def _reason(exc: httpx.HTTPError) -> str:
    return str(exc) or type(exc).__name__


def _status_message(response: httpx.Response) -> str:
    try:
        message = response.json().get("message")
    except (ValueError, AttributeError):
        message = None
    return " ".join(str(message or response.reason_phrase or "").split())[:300]


def as_document(item: Mapping[str, Any], kind: str, api_version: str) -> dict[str, Any]:
    """A list item as a standalone object: kind and apiVersion put back, managedFields dropped."""
    document: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
    document.update((k, v) for k, v in item.items() if k not in ("apiVersion", "kind"))
    metadata = document.get("metadata")
    if isinstance(metadata, dict) and "managedFields" in metadata:
        document["metadata"] = {k: v for k, v in metadata.items() if k != "managedFields"}
    return document


def source_name(namespace: str) -> str:
    """How objects read from the API are named in messages: ``cluster:default``."""
    return f"cluster:{namespace}"


def to_k8s_objects(documents: Sequence[Mapping[str, Any]], namespace: str) -> list[K8sObject]:
    """The dicts as the rules loader's objects: through ``load_documents``, so shapes are checked as for files."""
    from respy.rules.load import load_documents

    return load_documents(documents, source_name(namespace), namespace)


def load_cluster(
    namespace: str | None = None,
    *,
    url: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Sequence[str] = (),
    access: ClusterAccess | None = None,
    require_routing: bool = True,
) -> RuleSet:
    """``--expect cluster``: a ``RuleSet`` of the namespace's objects, read from the Kubernetes API.

    When the request's host names another namespace (``svc.other``, ``svc.other.svc.cluster.local``) that
    namespace is read too, where the service account may (a 403 there is a warning, not an error).
    ``extra`` are the other ``--expect`` values (files, ``-``, weights): their objects are added and win
    over the cluster's of the same kind and name, so a changed manifest can be tried before it is applied.
    """
    from respy.rules import RuleSet, load_inputs
    from respy.rules.load import ROUTING_KINDS

    access = access or cluster_access(namespace)
    read = read_cluster(namespace, access=access)
    objects = to_k8s_objects(read.objects, read.namespace)
    warnings = [f"--expect cluster: skipped {what}" for what in read.skipped]
    other = host_namespace(url, headers)
    if other and other != read.namespace:
        objects += _best_effort(other, access, warnings)
    weights = None
    if extra:
        given = load_inputs(list(extra), require_routing=False)
        objects = _overlay(objects, list(given.objects))
        weights, warnings = given.weights, warnings + list(given.warnings)
    if require_routing and weights is None and not any(o.kind in ROUTING_KINDS for o in objects):
        raise RulesError(_no_routing(read))
    return RuleSet(objects=tuple(objects), weights=weights, warnings=tuple(warnings),
                   istio_version=istio_version_of(access))


ISTIOD_PATH = "/apis/apps/v1/namespaces/istio-system/deployments/istiod"


def istio_version_of(access: ClusterAccess, timeout: float = TIMEOUT_S) -> tuple[int, int] | None:
    """The mesh's Istio version, from the tag of istiod's image (``docker.io/istio/pilot:1.22.3``).

    ``None`` when it cannot be read (no istiod in istio-system, a revisioned install, or the service account
    may not get it: k8s/rbac.yaml grants only its own namespace); the caller then says the version is unknown.
    """
    from respy.rules.semantics import parse_istio_version

    try:
        with open_client(access, timeout) as client:
            response = client.get(ISTIOD_PATH)
        if response.status_code != 200:
            return None
        containers = response.json()["spec"]["template"]["spec"]["containers"]
        image = next(str(c.get("image", "")) for c in containers if c.get("name") == "discovery")
        return parse_istio_version(image.rpartition(":")[2].split("-")[0])
    except (httpx.HTTPError, ValueError, KeyError, TypeError, StopIteration, ClusterError, RulesError, UsageError):
        return None


def _best_effort(namespace: str, access: ClusterAccess, warnings: list[str]) -> list[K8sObject]:
    try:
        read = read_cluster(namespace, access=access)
    except ClusterError as exc:
        warnings.append(f"--expect cluster: namespace {namespace} not read: {exc}")
        return []
    return to_k8s_objects(read.objects, namespace)


def _overlay(base: list[K8sObject], given: list[K8sObject]) -> list[K8sObject]:
    def key(obj: K8sObject) -> tuple[str, str, str | None, str]:
        return obj.kind, obj.group, obj.namespace, obj.name

    replaced = {key(o) for o in given}
    return [o for o in base if key(o) not in replaced] + given


def _no_routing(read: ClusterRead) -> str:
    missing = f" (not installed: {', '.join(read.skipped)})" if read.skipped else ""
    return (f"no routing rules found in namespace {read.namespace} of the cluster: "
            f"no VirtualService or HTTPRoute{missing}")


def host_namespace(url: str | None, headers: Mapping[str, str] | None = None) -> str | None:
    """The namespace a cluster-local host names: ``reviews.prod`` or ``reviews.prod.svc[.cluster.local]``."""
    host = next((v for k, v in (headers or {}).items() if k.lower() == "host"), None)
    if host is None and url:
        host = urlsplit(url).hostname
    if not host:
        return None
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    labels = host.lower().rstrip(".").split(".")
    if len(labels) >= 3 and labels[2] == "svc" and labels[1]:
        return labels[1]
    if len(labels) == 2 and not labels[1].isdigit() and labels[1] not in _PUBLIC_SUFFIXES:
        return labels[1]
    return None


# Two-label hosts that are domains, not ``service.namespace``.
_PUBLIC_SUFFIXES = frozenset({"com", "org", "net", "io", "dev", "local", "localhost", "internal", "cloud", "app"})
