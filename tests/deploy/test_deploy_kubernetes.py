"""deploy/kubernetes: schema-valid (strict) manifests, and the properties the gateway's operation relies on; the
configuration a pod gets (the ConfigMap's gateway.yaml + the env the Deployment sets from the Secret) is validated by
the gateway's own loader."""
from __future__ import annotations

import copy
import tomllib
from pathlib import Path, PurePosixPath

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import ValidationError as K8sValidationError

from deploy_support import (
    EXAMPLE_CONFIG,
    K8S_DIR,
    K8S_TEMPLATES,
    POLICIES,
    REPO,
    gateway_settings,
    k8s_quantity,
    load_k8s_resources,
)
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
    assert set(k8s) == {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "Secret"}
    templates = {r["kind"] for p, r in RESOURCES if p.parent == K8S_TEMPLATES}
    assert templates == {"Secret"}, "placeholders must never sit where `kubectl apply -f deploy/kubernetes/` reads"
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
    # the kubelet's clock includes the preStop hook; SIGTERM (and the drain) only starts after it; after the
    # in-flight streams (shutdown_grace_s) the audit spool ships for up to shutdown_drain_s
    drain = configmap_settings.audit.shutdown_drain_s if configmap_settings.audit.store else 0
    assert grace > delay + configmap_settings.server.shutdown_grace_s + drain


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
    """`kubectl apply -f deploy/kubernetes/` applies every file: nothing else (e.g. a kustomization) may sit there;
    the templates directory (not applied: no --recursive) holds only manifests too."""
    assert {p.suffix for p in K8S_DIR.iterdir() if p.is_file()} == {".yaml"}
    assert {p.name for p in K8S_DIR.iterdir() if p.is_dir()} == {K8S_TEMPLATES.name}
    assert {p.suffix for p in K8S_TEMPLATES.iterdir()} == {".yaml"}


# ---- the pod's configuration: the ConfigMap with the Secret's env on top ------------------------------------------------

def _secret_data(secret: dict) -> dict[str, str]:
    import base64

    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    return {**data, **(secret.get("stringData") or {})}


def _pod_env(container: dict, secret: dict) -> dict[str, str]:
    """The environment the kubelet gives the container, with the Secret template's values."""
    data = _secret_data(secret)
    env = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"], f"{item['name']}: unknown Secret {ref['name']}"
        if ref["key"] in data:
            env[item["name"]] = data[ref["key"]]
        else:
            assert ref.get("optional") is True, f"{item['name']}: key {ref['key']} missing from the Secret template"
    return env


@pytest.fixture(scope="module")
def pod_settings(k8s: dict, container: dict):
    """What `gateway serve` validates in the pod: ConfigMap gateway.yaml + env overrides (gateway's own code)."""
    return gateway_settings(k8s["ConfigMap"]["data"]["gateway.yaml"], _pod_env(container, k8s["Secret"]))


def _mount_for(path: str, container: dict, pod: dict) -> tuple[dict, dict]:
    """The volumeMount containing `path` (the deepest one) and its volume."""
    mounts = [m for m in container["volumeMounts"] if PurePosixPath(path).is_relative_to(m["mountPath"])]
    assert mounts, f"{path} is on no volume (the root filesystem is read-only)"
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
    return mount, volume


def test_pod_config_shares_redis_and_s3(pod_settings, k8s: dict) -> None:
    s = pod_settings
    assert s.approvals.backend == s.revocations.backend == "redis"
    assert s.approvals.redis_url == s.revocations.redis_url == _secret_data(k8s["Secret"])["redis-url"]
    assert s.audit.store.startswith("s3://") and s.audit.durability == "strict"
    from gateway.services import check_shared_state

    check_shared_state(s, max(s.server.workers, 4))  # several processes per pod would be safe too


def test_secret_references_resolve(k8s: dict, pod: dict, container: dict) -> None:
    secret = k8s["Secret"]
    name, data = secret["metadata"]["name"], _secret_data(secret)
    used = set()
    for item in container.get("env", []):
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            used.add(ref["key"])
    for volume in pod["spec"]["volumes"]:
        if "secret" in volume:
            assert volume["secret"]["secretName"] == name
            keys = {i["key"] for i in volume["secret"]["items"]}
            assert keys <= set(data), f"volume {volume['name']}: {keys - set(data)} not in the Secret"
            used |= keys
    assert set(data) <= used, f"Secret keys nothing reads: {set(data) - used}"


def test_state_lives_on_the_right_volumes(pod_settings, pod: dict, container: dict, k8s: dict) -> None:
    s = pod_settings
    # the spool: a writable emptyDir big enough for the spool and the journal
    mount, volume = _mount_for(s.audit.spool_dir, container, pod)
    assert not mount.get("readOnly") and "emptyDir" in volume
    assert k8s_quantity(volume["emptyDir"]["sizeLimit"]) >= 2 * s.audit.spool_max_bytes
    storage = container["resources"]
    assert k8s_quantity(storage["limits"]["ephemeral-storage"]) >= k8s_quantity(volume["emptyDir"]["sizeLimit"])
    # the signing key and its .pub: projected read-only from the Secret
    mount, volume = _mount_for(s.audit.signing_key, container, pod)
    assert mount.get("readOnly") is True and "secret" in volume
    projected = {i["path"] for i in volume["secret"]["items"]}
    key = PurePosixPath(s.audit.signing_key).relative_to(mount["mountPath"])
    assert {str(key), f"{key}.pub"} <= projected, "the mount is read-only: the gateway cannot write the .pub"
    # the policy: projected from the ConfigMap, the repository's files verbatim
    mount, volume = _mount_for(s.policies.path, container, pod)
    assert mount.get("readOnly") is True and volume["configMap"]["name"] == k8s["ConfigMap"]["metadata"]["name"]
    rel = PurePosixPath(s.policies.path).relative_to(mount["mountPath"])
    items = {i["path"]: i["key"] for i in volume["configMap"]["items"]}
    files = {PurePosixPath(p).name: k for p, k in items.items() if PurePosixPath(p).parent == rel}
    assert set(files) == {p.name for p in POLICIES.glob("*.yaml")}, "every policy file is projected"
    for fname, key in files.items():
        assert k8s["ConfigMap"]["data"][key] == (POLICIES / fname).read_text(), f"{key} drifted from policies/{fname}"


def test_configmap_policy_loads(k8s: dict, pod: dict, tmp_path: Path) -> None:
    from gateway.catalog import CatalogRegistry
    from gateway.policy.cli import check

    config = next(v for v in pod["spec"]["volumes"] if "configMap" in v)["configMap"]
    for item in config["items"]:
        target = tmp_path / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(k8s["ConfigMap"]["data"][item["key"]])
    assert check(tmp_path / "policies", CatalogRegistry()) == 0


def test_signing_key_commands_make_a_key_pair_the_gateway_accepts(tmp_path: Path) -> None:
    """Run the Secret template's openssl commands; the .pub must be byte-identical to what the gateway derives,
    since it cannot rewrite it on the read-only mount."""
    import shlex
    import shutil
    import subprocess

    from gateway.audit.digest import load_private_key, public_key_pem

    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    text = (K8S_TEMPLATES / "secret.yaml").read_text()
    commands = [line.lstrip("# ").strip() for line in text.splitlines() if line.lstrip("# ").startswith("openssl ")]
    assert len(commands) == 2
    for command in commands:
        subprocess.run(shlex.split(command), cwd=tmp_path, check=True, capture_output=True, timeout=30)
    key = load_private_key(str(tmp_path / "audit-signing-key.pem"))
    assert (tmp_path / "audit-signing-key.pem.pub").read_bytes() == public_key_pem(key.public_key())


def test_replicas_spread_across_nodes(pod: dict) -> None:
    spec, labels = pod["spec"], pod["metadata"]["labels"]
    spread = [c for c in spec.get("topologySpreadConstraints", [])
              if c["topologyKey"] == "kubernetes.io/hostname"
              and _subset(c["labelSelector"]["matchLabels"], labels)]
    anti = spec.get("affinity", {}).get("podAntiAffinity", {})
    terms = [*anti.get("requiredDuringSchedulingIgnoredDuringExecution", []),
             *(t["podAffinityTerm"] for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution", []))]
    anti_terms = [t for t in terms if t["topologyKey"] == "kubernetes.io/hostname"
                  and _subset(t["labelSelector"]["matchLabels"], labels)]
    assert spread or anti_terms, "nothing keeps both replicas off one node"
