"""deploy/kubernetes: schema-valid (strict) manifests, and the properties the gateway's operation relies on."""
from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import ValidationError as K8sValidationError

from deploy_support import EXAMPLE_CONFIG, K8S_DIR, REPO, k8s_quantity, load_k8s_resources
from gateway.config import load_settings

# The oldest cluster version we promise to run on, and the newest schema the installed kubernetes-validate knows.
K8S_VERSIONS = sorted({"1.32.0", kubernetes_validate.latest_version()})
RESOURCES = load_k8s_resources()
IMAGE = "reasoning-gateway:0.1.0"


def _subset(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


@pytest.fixture(scope="module")
def pod(k8s: dict) -> dict:
    return k8s["Deployment"]["spec"]["template"]


@pytest.fixture(scope="module")
def container(pod: dict) -> dict:
    containers = pod["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


@pytest.fixture(scope="module")
def configmap_settings(k8s: dict, tmp_path_factory: pytest.TempPathFactory):
    """The ConfigMap's embedded gateway.yaml, validated exactly as `gateway serve --config` does."""
    path: Path = tmp_path_factory.mktemp("configmap") / "gateway.yaml"
    path.write_text(k8s["ConfigMap"]["data"]["gateway.yaml"], encoding="utf-8")
    return load_settings(path, env={})


def test_there_are_manifests() -> None:
    assert len(RESOURCES) >= 4, f"found {[(p.name, r.get('kind')) for p, r in RESOURCES]}"


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path, resource", RESOURCES, ids=[f"{p.name}:{r.get('kind')}" for p, r in RESOURCES])
def test_manifest_is_valid_in_strict_mode(path: Path, resource: dict, version: str) -> None:
    # validate() raises SchemaNotFoundError for an unknown kind/apiVersion (the CLI would only warn).
    try:
        kubernetes_validate.validate(resource, version, strict=True)
    except K8sValidationError as exc:
        where = ".".join(str(p) for p in exc.path)
        pytest.fail(f"{path.name} ({resource['kind']}) against {version}: {where}: {exc.message}")


def test_strict_validation_rejects_unknown_fields(k8s: dict) -> None:
    """Guard against a validator that passes everything: a misspelt key must fail."""
    bad = copy.deepcopy(k8s["Deployment"])
    bad["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz", "port": 8080}}
    with pytest.raises(K8sValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[-1], strict=True)


def test_kinds_and_no_namespace(k8s: dict) -> None:
    assert set(k8s) == {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget"}
    for _, res in RESOURCES:
        assert "namespace" not in res["metadata"], f"{res['kind']} pins a namespace; apply with -n instead"


def test_deployment_replicas_image_and_probes(k8s: dict, container: dict, configmap_settings) -> None:
    assert k8s["Deployment"]["spec"]["replicas"] >= 2
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert container["image"] == IMAGE == f"reasoning-gateway:{version}"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": configmap_settings.server.port}

    def target(probe: dict) -> tuple[str, int]:
        get = probe["httpGet"]
        port = ports[get["port"]] if isinstance(get["port"], str) else get["port"]
        return get["path"], port

    assert target(container["readinessProbe"]) == ("/readyz", 8080)
    assert target(container["livenessProbe"]) == ("/healthz", 8080)


def test_deployment_security_context(pod: dict, container: dict) -> None:
    pod_sc = pod["spec"]["securityContext"]
    assert pod_sc["runAsNonRoot"] is True
    assert pod_sc["runAsUser"] > 0 and pod_sc["runAsGroup"] > 0
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc.get("privileged", False) is False
    assert "ALL" in sc["capabilities"]["drop"] and not sc["capabilities"].get("add")
    assert pod["spec"].get("automountServiceAccountToken") is False


def test_resources_have_requests_within_limits(container: dict) -> None:
    res = container["resources"]
    for kind in ("cpu", "memory"):
        request, limit = k8s_quantity(res["requests"][kind]), k8s_quantity(res["limits"][kind])
        assert 0 < request <= limit, f"{kind}: request {request} limit {limit}"


def test_config_is_mounted_read_only_from_the_configmap(k8s: dict, pod: dict, container: dict) -> None:
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    config_mount = mounts["/etc/gateway"]
    assert config_mount.get("readOnly") is True
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes[config_mount["name"]]["configMap"]["name"] == k8s["ConfigMap"]["metadata"]["name"]
    # a read-only root needs somewhere writable for temp files
    tmp = mounts["/tmp"]
    assert "emptyDir" in volumes[tmp["name"]] and not tmp.get("readOnly")


def test_termination_grace_outlasts_the_gateways_shutdown_grace(k8s: dict, container: dict, configmap_settings):
    grace = k8s["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    delay = 0.0
    if "exec" in pre_stop:
        command = pre_stop["exec"]["command"]
        assert command[0] == "sleep", f"unexpected preStop {command}"
        delay = float(command[1])
    elif "sleep" in pre_stop:
        delay = float(pre_stop["sleep"]["seconds"])
    # the kubelet's clock includes the preStop hook; SIGTERM (and the drain) only starts after it
    assert grace > delay + configmap_settings.server.shutdown_grace_s


def test_selectors_pick_the_deployments_pods(k8s: dict, pod: dict) -> None:
    labels = pod["metadata"]["labels"]
    deployment = k8s["Deployment"]["spec"]
    assert _subset(deployment["selector"]["matchLabels"], labels)
    pdb = k8s["PodDisruptionBudget"]["spec"]
    assert _subset(pdb["selector"]["matchLabels"], labels)
    assert "matchExpressions" not in pdb["selector"]
    assert pdb["minAvailable"] == 1 < deployment["replicas"], "a PDB at full replicas would block every drain"
    service = k8s["Service"]["spec"]
    assert _subset(service["selector"], labels)
    container_ports = {p["name"] for p in pod["spec"]["containers"][0]["ports"]}
    assert all(p["targetPort"] in container_ports for p in service["ports"])


def test_configmap_gateway_yaml_validates_and_equals_the_example(k8s: dict, configmap_settings) -> None:
    assert configmap_settings.server.host == "0.0.0.0", "on loopback the Service and the probes cannot reach it"
    embedded = yaml.safe_load(k8s["ConfigMap"]["data"]["gateway.yaml"])
    assert embedded == yaml.safe_load(EXAMPLE_CONFIG.read_text()), "ConfigMap drifted from gateway.example.yaml"


def test_only_yaml_manifests_in_the_directory() -> None:
    """`kubectl apply -f deploy/kubernetes/` applies every file: nothing else (e.g. a kustomization) may sit there."""
    assert {p.suffix for p in K8S_DIR.iterdir()} == {".yaml"}
