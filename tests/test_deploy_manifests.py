"""The Kubernetes manifests (k8s/*.yaml) and the Dockerfile: current APIs, hardening, least privilege, and
container arguments that respy's own parser accepts. The Dockerfile's CMD is run for real and sent SIGTERM."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from respy.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "k8s"
DOCKERFILE = ROOT / "Dockerfile"
CURRENT_API = {
    "Deployment": "apps/v1",
    "Job": "batch/v1",
    "ConfigMap": "v1",
    "ServiceAccount": "v1",
    "Role": "rbac.authorization.k8s.io/v1",
    "RoleBinding": "rbac.authorization.k8s.io/v1",
}
WORKLOADS = ("Deployment", "Job")
RBAC_RESOURCES = {
    "networking.istio.io": {"virtualservices", "destinationrules", "gateways", "sidecars"},
    "gateway.networking.k8s.io": {"httproutes", "referencegrants"},
    "": {"services"},
    "apps": {"deployments", "statefulsets"},
}


def documents(name: str) -> list[dict[str, Any]]:
    with (K8S / name).open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc]


def all_documents() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        for doc in documents(path.name):
            yield path.name, doc


def workloads() -> list[tuple[str, dict[str, Any]]]:
    return [(name, doc) for name, doc in all_documents() if doc["kind"] in WORKLOADS]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def one(name: str, kind: str) -> dict[str, Any]:
    (found,) = [d for d in documents(name) if d["kind"] == kind]
    return found


def container_args(name: str) -> list[str]:
    (container,) = pod_spec(one(name, "Job"))["containers"]
    assert container["command"] == ["respy"]
    return [str(a) for a in container["args"]]


# --- k8s/*.yaml ------------------------------------------------------------------------------------------


def test_every_manifest_is_there_and_uses_current_api_versions() -> None:
    assert {p.name for p in K8S.glob("*.yaml")} >= {"respy.yaml", "job.yaml", "parallel-job.yaml", "rbac.yaml"}
    for name, doc in all_documents():
        assert doc["apiVersion"] == CURRENT_API[doc["kind"]], (name, doc["kind"])
        assert doc["metadata"]["name"]


@pytest.mark.parametrize("name", ["respy.yaml"])
def test_deployment_selector_matches_its_pod_labels(name: str) -> None:
    deployment = one(name, "Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector == {"app": "respy"}
    assert selector.items() <= labels.items()
    assert [c["name"] for c in pod_spec(deployment)["containers"]] == ["respy"]
    assert pod_spec(deployment)["serviceAccountName"] == one("rbac.yaml", "ServiceAccount")["metadata"]["name"]
    annotations = deployment["spec"]["template"]["metadata"].get("annotations") or {}
    assert annotations.get("sidecar.istio.io/inject") != "false"  # meant for the mesh: injection stays on


def test_every_container_is_hardened_and_has_resources() -> None:
    assert workloads()
    for name, workload in workloads():
        spec = pod_spec(workload)
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] >= 1000 and pod["runAsUser"] != 1337, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in spec.get("initContainers", []) + spec["containers"]:
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True, name
            assert context["runAsUser"] == pod["runAsUser"], name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert "add" not in context["capabilities"], name
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
            assert context.get("privileged", False) is False, name
            for key in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][key]), (name, key)
            assert not container["image"].endswith(":latest"), name


def test_the_only_writable_paths_are_volumes() -> None:
    for name, workload in workloads():
        spec = pod_spec(workload)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec["containers"]:
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, name
                if "configMap" in volumes[mount["name"]]:
                    assert mount.get("readOnly") is True, name


def test_rbac_reads_only_the_listed_resources() -> None:
    role = one("rbac.yaml", "Role")
    granted: dict[str, set[str]] = {}
    for rule in role["rules"]:
        assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
        assert "*" not in rule["resources"] and "*" not in rule["apiGroups"], rule
        assert "resourceNames" not in rule or rule["resourceNames"], rule
        for group in rule["apiGroups"]:
            granted.setdefault(group, set()).update(rule["resources"])
    assert granted == RBAC_RESOURCES
    binding = one("rbac.yaml", "RoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "respy"}]
    assert not [d for _, d in all_documents() if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]


def test_rbac_covers_every_resource_that_expect_cluster_lists() -> None:
    from respy.rules.cluster import RESOURCES

    assert {r.group: set() for r in RESOURCES}.keys() == RBAC_RESOURCES.keys()
    for resource in RESOURCES:
        assert resource.plural in RBAC_RESOURCES[resource.group]


@pytest.mark.parametrize("name", ["job.yaml", "parallel-job.yaml"])
def test_jobs_are_one_shot_and_handle_the_istio_sidecar(name: str) -> None:
    job = one(name, "Job")
    assert job["spec"]["backoffLimit"] == 0
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert job["spec"]["template"]["metadata"]["annotations"]["sidecar.istio.io/nativeSidecar"] == "true"
    assert "nativeSidecar" in (K8S / name).read_text(encoding="utf-8").split("apiVersion")[0]  # explained


def test_job_args_parse_and_check_against_the_mounted_rules() -> None:
    args = build_parser().parse_args(container_args("job.yaml"))
    assert (args.url or args.u) == "http://weather-backend:5000/version"
    (rules,) = args.expect
    directory, _, file = rules.rpartition("/")
    spec = pod_spec(one("job.yaml", "Job"))
    (mount,) = [m for m in spec["containers"][0]["volumeMounts"] if m["mountPath"] == directory]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    configmap = one("job.yaml", "ConfigMap")
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert file in configmap["data"]


def test_job_configmap_holds_the_tutorials_intended_90_10_split(tmp_path: Path) -> None:
    from respy.rules import load_inputs, resolve

    text = one("job.yaml", "ConfigMap")["data"]["weather-rules.yaml"]
    rules_file = tmp_path / "weather-rules.yaml"
    rules_file.write_text(text, encoding="utf-8")
    expectation = resolve(load_inputs([str(rules_file)]), url="http://weather-backend:5000/version", headers={},
                          method="GET", namespace="default", gateway=None)
    assert {o.name: round(o.probability, 6) for o in expectation.outcomes} == {"single": 0.9, "multiple": 0.1}


def test_parallel_job_is_indexed_and_each_pod_prints_json() -> None:
    job = one("parallel-job.yaml", "Job")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["parallelism"] == spec["completions"] >= 2
    args = build_parser().parse_args(container_args("parallel-job.yaml"))
    assert args.output == "json" and args.requests and args.quiet
    assert (args.url or args.u) == "http://weather-backend:5000/version"


def test_pods_know_their_namespace() -> None:
    for name, workload in workloads():
        env = {e["name"]: e for e in pod_spec(workload)["containers"][0].get("env", [])}
        assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace", name


# --- Dockerfile -----------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def dockerfile_args() -> dict[str, str]:
    return dict(rest.split("=", 1) for keyword, rest in dockerfile_instructions() if keyword == "ARG" and "=" in rest)


def base_images() -> list[str]:
    defaults = dockerfile_args()
    images = []
    for keyword, rest in dockerfile_instructions():
        if keyword == "FROM":
            image = rest.split()[0]
            images.append(re.sub(r"\$\{?(\w+)\}?", lambda m: defaults[m.group(1)], image))
    return images


def test_dockerfile_is_multi_stage_on_a_pinned_slim_python() -> None:
    images = base_images()
    assert len(images) >= 2
    for image in images:
        name, _, tag = image.partition(":")
        assert name == "python" and re.fullmatch(r"3\.\d+\.\d+-slim-\w+", tag), image
    assert "COPY --from=build" in DOCKERFILE.read_text(encoding="utf-8")


def test_dockerfile_runs_as_a_numeric_non_root_user() -> None:
    users = [rest for keyword, rest in dockerfile_instructions() if keyword == "USER"]
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000 and int(uid) != 1337
    k8s_uid = pod_spec(one("respy.yaml", "Deployment"))["securityContext"]["runAsUser"]
    assert int(uid) == k8s_uid


def test_dockerfile_installs_with_the_shared_script_and_works_read_only() -> None:
    runs = " ".join(rest for keyword, rest in dockerfile_instructions() if keyword == "RUN")
    assert "sh docker/install.sh wheels /src /wheels" in runs
    assert "sh docker/install.sh venv /wheels /opt/respy" in runs
    env = " ".join(rest for keyword, rest in dockerfile_instructions() if keyword == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PATH=/opt/respy/bin:" in env
    install = (ROOT / "docker" / "install.sh").read_text(encoding="utf-8")
    assert "compileall" in install and "--no-index" in install


def test_dot_respy_shim_is_in_the_working_directory() -> None:
    workdir = [rest for keyword, rest in dockerfile_instructions() if keyword == "WORKDIR"][-1]
    runs = " ".join(rest for keyword, rest in dockerfile_instructions() if keyword == "RUN")
    assert f"docker/respy {workdir}/respy" in runs
    shim = ROOT / "docker" / "respy"
    assert shim.read_text(encoding="utf-8").startswith("#!/bin/sh\n")
    assert os.access(shim, os.X_OK)


def test_dot_respy_shim_runs_respy(tmp_path: Path) -> None:
    """The shim execs ``$RESPY_HOME/bin/respy`` (/opt/respy in the image); here a stand-in prints its args."""
    fake = tmp_path / "bin" / "respy"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho "respy called with: $*"\n', encoding="utf-8")
    fake.chmod(0o755)
    done = subprocess.run(["sh", str(ROOT / "docker" / "respy"), "--u", "http://x:5000/version", "--n", "5"],
                          capture_output=True, text=True, env={**os.environ, "RESPY_HOME": str(tmp_path)}, timeout=10)
    assert done.returncode == 0
    assert done.stdout == "respy called with: --u http://x:5000/version --n 5\n"


def dockerfile_cmd() -> list[str]:
    (cmd,) = [rest for keyword, rest in dockerfile_instructions() if keyword == "CMD"]
    return json.loads(cmd)  # exec form: no shell in between, the process is PID 1


def _catches_sigterm(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    caught = int(re.search(r"^SigCgt:\s*([0-9a-f]+)$", status, re.MULTILINE).group(1), 16)  # type: ignore[union-attr]
    return bool(caught & (1 << (signal.SIGTERM - 1)))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to see the signal handler")
def test_dockerfile_cmd_stays_up_and_exits_promptly_on_sigterm() -> None:
    cmd = dockerfile_cmd()
    assert cmd[0] == "python"
    process = subprocess.Popen([sys.executable, *cmd[1:]])
    try:
        deadline = time.monotonic() + 10
        while not _catches_sigterm(process.pid):
            assert process.poll() is None, "the CMD exited on its own"
            assert time.monotonic() < deadline, "the CMD never installed a SIGTERM handler"
            time.sleep(0.02)
        time.sleep(0.3)
        assert process.poll() is None, "the CMD must stay up for kubectl exec"
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=2) == 0
        assert time.monotonic() - sent < 2
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_dockerignore_keeps_the_context_small() -> None:
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()]
    rules = [ln for ln in lines if ln and not ln.startswith("#")]
    assert rules[0] == "*"  # an allow-list: nothing goes in unless named
    assert {"!pyproject.toml", "!respy/", "!docker/"} <= set(rules)


def test_readme_documents_the_build_command() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docker build -t respy ." in text
    assert "kubectl logs -l job-name=respy-parallel" in text and "--tail=-1" in text
    for command in re.findall(r"^\s*(respy merge .*)$", text, re.MULTILINE):
        shlex.split(command)
