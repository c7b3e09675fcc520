"""The rendered Kubernetes objects of components/workloads.py, checked without Pulumi:
kubernetes-validate (strict) for every supported Kubernetes version, label/selector
consistency, security settings, and which paths change on a day-2 edit (scale, new image).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Sequence
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import all_versions

from components.config import (
    MAX_KUBERNETES_MINOR,
    MIN_KUBERNETES_MINOR,
    ConfigError,
    KubernetesVersion,
    StackConfig,
    parse_stack_config,
)
from components.workloads import (
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_PART_OF,
    Manifest,
    cluster_url,
    node_port_url,
    render_manifests,
)
from tests.conftest import stack_config

NGINX = "public.ecr.aws/nginx/nginx-unprivileged:1.27.3"

# Three apps, two namespaces: NodePort with a fixed port, ClusterIP, LoadBalancer.
THREE_APPS: list[dict[str, Any]] = [
    {"name": "web", "image": NGINX, "replicas": 3, "port": 8080, "nodePort": 30080},
    {"name": "api", "image": "ghcr.io/example/api:2.1.0", "replicas": 2, "port": 9000,
     "serviceType": "ClusterIP", "namespace": "backend",
     "capabilities": ["NET_BIND_SERVICE"], "cpuLimit": "1", "memoryLimit": "256Mi"},
    {"name": "shop", "image": "example/shop:1.0.4", "replicas": 1, "port": 8081,
     "serviceType": "LoadBalancer", "nodePort": 30081},
]


def load_stack(stack: str = "dev", **overrides: Any) -> StackConfig:
    """A shipped stack file (with overrides) parsed exactly as the program parses it."""
    values = {
        key.split(":", 1)[1] if key.startswith("kubeadm-cluster:") else key: value
        for key, value in stack_config(stack, overrides).items()
    }
    return parse_stack_config(values, stack)


def render(config: StackConfig) -> list[Manifest]:
    return render_manifests(config.apps, config.cluster_name, config.cluster.kubernetes_version)


def identity(manifest: Manifest) -> tuple[str, str, str]:
    meta = manifest["metadata"]
    return manifest["kind"], meta.get("namespace", ""), meta["name"]


def flatten(value: Any, path: str = "") -> dict[str, Any]:
    """{"spec.template.spec.containers[0].image": "...", ...}: one entry per leaf."""
    if isinstance(value, dict):
        if not value:
            return {path: {}}
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(flatten(inner, f"{path}.{key}" if path else key))
        return out
    if isinstance(value, list):
        if not value:
            return {path: []}
        out = {}
        for i, inner in enumerate(value):
            out.update(flatten(inner, f"{path}[{i}]"))
        return out
    return {path: value}


def flat_objects(manifests: Iterable[Manifest]) -> dict[tuple[tuple[str, str, str], str], Any]:
    return {
        (identity(m), path): value for m in manifests for path, value in flatten(m).items()
    }


def changed_paths(before: list[Manifest], after: list[Manifest]) -> set[tuple[Any, str]]:
    old, new = flat_objects(before), flat_objects(after)
    return {key for key in old.keys() | new.keys() if old.get(key, object()) != new.get(key)}


# ---------------------------------------------------------------------------------------------
# The label/selector checker


def _subset(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= labels.items()


def selection_problems(manifests: Sequence[Manifest]) -> list[str]:
    """Every way a Service or PDB could miss its pods, or a Deployment (or StatefulSet) grab
    another's pods."""
    problems: list[str] = []
    deployments = [m for m in manifests if m["kind"] in ("Deployment", "StatefulSet")]

    def pods(namespace: str) -> list[tuple[str, dict[str, str], list[dict[str, Any]]]]:
        return [
            (d["metadata"]["name"], d["spec"]["template"]["metadata"].get("labels", {}),
             [p for c in d["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])])
            for d in deployments if d["metadata"].get("namespace") == namespace
        ]

    for d in deployments:
        where = "{} {}/{}".format(*identity(d))
        ns = d["metadata"]["namespace"]
        selector = d["spec"]["selector"].get("matchLabels", {})
        template = d["spec"]["template"]["metadata"].get("labels", {})
        if set(selector) != {LABEL_NAME, LABEL_PART_OF}:
            problems.append(f"{where}: selector keys {sorted(selector)} are not name + part-of")
        if not _subset(selector, template):
            problems.append(f"{where}: selector {selector} does not match its pod template")
        for other, labels, _ in pods(ns):
            if other != d["metadata"]["name"] and _subset(selector, labels):
                problems.append(f"{where}: selector also matches the pods of {other}")
        if d["metadata"].get("labels") != template:
            problems.append(f"{where}: object labels differ from pod labels")
        for spread in d["spec"]["template"]["spec"].get("topologySpreadConstraints", []):
            if spread["labelSelector"].get("matchLabels") != selector:
                problems.append(f"{where}: topology spread selects other pods than the selector")

    for m in manifests:
        if m["kind"] not in ("Service", "PodDisruptionBudget"):
            continue
        where = "{} {}/{}".format(*identity(m))
        ns = m["metadata"]["namespace"]
        spec = m["spec"]
        selector = spec.get("selector", {}) if m["kind"] == "Service" else \
            spec.get("selector", {}).get("matchLabels", {})
        matched = [(name, ports) for name, labels, ports in pods(ns) if _subset(selector, labels)]
        if len(matched) != 1:
            problems.append(
                f"{where}: selector {selector} matches {len(matched)} workloads "
                f"({[name for name, _ in matched]}); expected exactly one"
            )
            continue
        if m["kind"] == "Service":
            container_ports = matched[0][1]
            for port in spec.get("ports", []):
                target = port.get("targetPort", port.get("port"))
                if not any(target in (p.get("name"), p["containerPort"]) for p in container_ports):
                    problems.append(f"{where}: targetPort {target!r} is no port of the pods")
    return problems


def test_checker_accepts_the_rendered_objects() -> None:
    for config in (load_stack("dev"), load_stack("aws"), load_stack("dev", apps=THREE_APPS)):
        assert selection_problems(render(config)) == []


def _find(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    return next(m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name)


@pytest.mark.parametrize(
    "breakage, expected",
    [
        ("service-selector-typo", "matches 0 workloads"),
        ("service-other-namespace", "matches 0 workloads"),
        ("service-empty-selector", "matches 0 workloads"),
        ("service-target-port", "is no port of the pods"),
        ("pdb-selects-nothing", "matches 0 workloads"),
        ("deployment-selector-broad", "also matches the pods of"),
        ("deployment-selector-template", "does not match its pod template"),
    ],
)
def test_checker_catches_a_broken_manifest(breakage: str, expected: str) -> None:
    manifests = copy.deepcopy(render(load_stack("dev", apps=THREE_APPS)))
    service = _find(manifests, "Service", "web")
    pdb = _find(manifests, "PodDisruptionBudget", "web")
    deployment = _find(manifests, "Deployment", "web")
    if breakage == "service-selector-typo":
        service["spec"]["selector"][LABEL_NAME] = "wbe"
    elif breakage == "service-other-namespace":
        service["metadata"]["namespace"] = "backend"
    elif breakage == "service-empty-selector":
        service["spec"]["selector"] = {}
    elif breakage == "service-target-port":
        service["spec"]["ports"][0]["targetPort"] = "https"
    elif breakage == "pdb-selects-nothing":
        pdb["spec"]["selector"]["matchLabels"][LABEL_PART_OF] = "another-cluster"
    elif breakage == "deployment-selector-broad":
        # Only part-of: it would also match (and fight over) the shop pods.
        deployment["spec"]["selector"]["matchLabels"].pop(LABEL_NAME)
    elif breakage == "deployment-selector-template":
        deployment["spec"]["template"]["metadata"]["labels"][LABEL_NAME] = "other"
    problems = selection_problems(manifests)
    assert any(expected in p for p in problems), problems


# ---------------------------------------------------------------------------------------------
# kubernetes-validate


def schema_version(version: KubernetesVersion) -> str:
    """The kubernetes-validate schema for a configured version: the same minor, or the nearest
    one it ships (1.24, allowed by config, has no schema: 1.25 is used)."""
    minors = sorted({int(v.split(".")[1]) for v in all_versions()})
    nearest = min(minors, key=lambda m: (abs(m - version.minor), -m))
    return f"1.{nearest}"


def test_schemas_cover_the_configured_versions() -> None:
    minors = {int(v.split(".")[1]) for v in all_versions()}
    assert schema_version(KubernetesVersion(37, None)) == "1.37"  # the config default
    assert set(range(MIN_KUBERNETES_MINOR + 1, MAX_KUBERNETES_MINOR + 1)) <= minors
    assert schema_version(KubernetesVersion(MIN_KUBERNETES_MINOR, None)) == "1.25"


def validate_all(manifests: list[Manifest], version: str) -> None:
    for manifest in manifests:
        try:
            used = kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{identity(manifest)} invalid for Kubernetes {version}: {error}")
        assert used == version


@pytest.mark.parametrize("stack", ["dev", "aws"])
def test_shipped_stacks_render_valid_objects(stack: str) -> None:
    config = load_stack(stack)
    manifests = render(config)
    assert [identity(m) for m in manifests] == [
        ("Namespace", "", "apps"),
        ("Deployment", "apps", "nginx"),
        ("Service", "apps", "nginx"),
        ("PodDisruptionBudget", "apps", "nginx"),
    ]
    validate_all(manifests, schema_version(config.cluster.kubernetes_version))


@pytest.mark.parametrize("minor", range(MIN_KUBERNETES_MINOR, MAX_KUBERNETES_MINOR + 1))
def test_three_apps_valid_for_every_supported_version(minor: int) -> None:
    node_image = f"kindest/node:v1.{minor}.0"
    config = load_stack("dev", apps=THREE_APPS, kubernetesVersion=f"1.{minor}",
                        nodeImage=node_image)
    manifests = render(config)
    assert len(manifests) == 2 + 3 * 2 + 2  # namespaces, deployment+service each, two PDBs
    validate_all(manifests, schema_version(config.cluster.kubernetes_version))
    pdbs = [m for m in manifests if m["kind"] == "PodDisruptionBudget"]
    assert all(("unhealthyPodEvictionPolicy" in p["spec"]) == (minor >= 27) for p in pdbs)


def test_strict_validation_rejects_an_unknown_field() -> None:
    """The validator is strict for real: a misspelt field fails."""
    deployment = copy.deepcopy(_find(render(load_stack("dev")), "Deployment", "nginx"))
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.31", strict=True)


# ---------------------------------------------------------------------------------------------
# Object content


def test_default_nginx_deployment() -> None:
    config = load_stack("dev")
    deployment = _find(render(config), "Deployment", "nginx")
    labels = {LABEL_NAME: "nginx", LABEL_PART_OF: "kubeadm-dev", LABEL_MANAGED_BY: "pulumi"}
    assert deployment["metadata"] == {"name": "nginx", "namespace": "apps", "labels": labels}
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["selector"] == {"matchLabels": {LABEL_NAME: "nginx", LABEL_PART_OF: "kubeadm-dev"}}
    assert spec["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == NGINX
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["tcpSocket"] == {"port": "http"}
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    assert pod["topologySpreadConstraints"] == [{
        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": spec["selector"],
    }]


@pytest.mark.parametrize(("version", "pre_stop"), [
    ("1.29", None),  # no sleep action before 1.30: the pod simply stops
    ("1.30", {"preStop": {"sleep": {"seconds": 5}}}),
    ("1.37", {"preStop": {"sleep": {"seconds": 5}}}),
])
def test_a_stopping_pod_keeps_serving_while_its_endpoints_go(
    version: str, pre_stop: dict[str, Any] | None
) -> None:
    # Without it the real e2e's roll-out lost requests (refused, reset) to pods already stopping.
    config = load_stack("dev", kubernetesVersion=version,
                        nodeImage=f"kindest/node:v{version}.0")
    (container,) = _find(render(config), "Deployment", "nginx")["spec"]["template"]["spec"][
        "containers"]
    assert container.get("lifecycle") == pre_stop


def all_deployments() -> list[Manifest]:
    configs = [load_stack("dev"), load_stack("aws"), load_stack("dev", apps=THREE_APPS)]
    return [m for c in configs for m in render(c) if m["kind"] == "Deployment"]


@pytest.mark.parametrize("deployment", all_deployments(), ids=lambda d: d["metadata"]["name"])
def test_security_context(deployment: Manifest) -> None:
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["automountServiceAccountToken"] is False
    assert "hostNetwork" not in pod and "hostPID" not in pod and "hostIPC" not in pod
    for container in pod["containers"]:
        sc = container["securityContext"]
        assert sc["privileged"] is False
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["runAsNonRoot"] is True
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert sc["capabilities"]["drop"] == ["ALL"]
        resources = container["resources"]
        assert set(resources["limits"]) == {"cpu", "memory"}
        assert set(resources["requests"]) == {"cpu", "memory"}


def test_resources_and_capabilities_come_from_config() -> None:
    api = _find(render(load_stack("dev", apps=THREE_APPS)), "Deployment", "api")
    (container,) = api["spec"]["template"]["spec"]["containers"]
    assert container["resources"] == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"cpu": "1", "memory": "256Mi"},
    }
    assert container["securityContext"]["capabilities"] == {
        "drop": ["ALL"], "add": ["NET_BIND_SERVICE"],
    }


def test_namespace_pod_security_follows_capabilities() -> None:
    def enforce(apps: list[dict[str, Any]]) -> str:
        manifests = render(load_stack("dev", apps=apps))
        labels = _find(manifests, "Namespace", "apps")["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/warn"] == "restricted"
        return str(labels["pod-security.kubernetes.io/enforce"])

    app = {"name": "web", "image": NGINX, "port": 8080, "nodePort": 30080}
    assert enforce([app]) == "restricted"
    assert enforce([{**app, "capabilities": ["NET_BIND_SERVICE"]}]) == "restricted"
    assert enforce([{**app, "capabilities": ["CHOWN"]}]) == "baseline"


def test_builtin_namespace_is_used_not_managed() -> None:
    app = {"name": "web", "image": NGINX, "port": 8080, "nodePort": 30080,
           "namespace": "default"}
    kinds = [identity(m) for m in render(load_stack("dev", apps=[app]))]
    assert ("Namespace", "", "default") not in kinds
    assert ("Deployment", "default", "web") in kinds


def test_services_per_type() -> None:
    manifests = render(load_stack("dev", apps=THREE_APPS))
    web, api, shop = (_find(manifests, "Service", n) for n in ("web", "api", "shop"))
    assert web["spec"]["type"] == "NodePort"
    assert web["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP", "nodePort": 30080}
    ]
    assert api["spec"]["type"] == "ClusterIP"
    assert "nodePort" not in api["spec"]["ports"][0]
    assert api["metadata"]["namespace"] == "backend"
    assert shop["spec"]["type"] == "LoadBalancer"
    assert shop["spec"]["ports"][0]["nodePort"] == 30081
    # No load balancer controller on a kubeadm cluster: do not wait for an ingress address.
    assert shop["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}
    assert "annotations" not in web["metadata"]


def test_pdb_only_with_more_than_one_replica() -> None:
    manifests = render(load_stack("dev", apps=THREE_APPS))
    pdbs = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "PodDisruptionBudget"}
    assert set(pdbs) == {"web", "api"}  # shop has one replica
    assert pdbs["web"]["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in pdbs["web"]["spec"]
    assert pdbs["web"]["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_url_helpers() -> None:
    app = load_stack("dev", apps=THREE_APPS).apps[1]
    assert cluster_url(app) == "http://api.backend.svc.cluster.local:9000"
    assert node_port_url("127.0.0.1", 30080) == "http://127.0.0.1:30080"


# ---------------------------------------------------------------------------------------------
# Day-2 changes touch only what must change


def _with(apps: list[dict[str, Any]], index: int, **changes: Any) -> list[dict[str, Any]]:
    changed = copy.deepcopy(apps)
    changed[index].update(changes)
    return changed


def test_scale_changes_only_that_deployments_replicas() -> None:
    before = render(load_stack("dev", apps=THREE_APPS))
    after = render(load_stack("dev", apps=_with(THREE_APPS, 0, replicas=6)))
    assert changed_paths(before, after) == {(("Deployment", "apps", "web"), "spec.replicas")}


def test_scale_from_one_replica_adds_only_a_pdb() -> None:
    before = render(load_stack("dev", apps=THREE_APPS))
    after = render(load_stack("dev", apps=_with(THREE_APPS, 2, replicas=2)))
    changed = changed_paths(before, after)
    assert (("Deployment", "apps", "shop"), "spec.replicas") in changed
    others = {obj for obj, _ in changed} - {("Deployment", "apps", "shop")}
    assert others == {("PodDisruptionBudget", "apps", "shop")}


@pytest.mark.parametrize("image", [f"{NGINX.rsplit(':', 1)[0]}:1.27.4",
                                   f"{NGINX.rsplit(':', 1)[0]}:1.27.2"])  # roll out, roll back
def test_image_change_changes_only_the_container_image(image: str) -> None:
    before = render(load_stack("aws"))
    apps = [{"name": "nginx", "image": image, "replicas": 3, "port": 8080, "nodePort": 30080}]
    after = render(load_stack("aws", apps=apps))
    assert changed_paths(before, after) == {
        (("Deployment", "apps", "nginx"), "spec.template.spec.containers[0].image")
    }
    deployment = _find(after, "Deployment", "nginx")
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"


def test_worker_count_changes_no_object() -> None:
    assert changed_paths(render(load_stack("aws")), render(load_stack("aws", workers=5))) == set()


# ---------------------------------------------------------------------------------------------
# App configs the validation rejects (app-specific; the rest is in test_config.py)


@pytest.mark.parametrize(
    "apps, key",
    [
        ([{"name": "web", "image": "nginx:latest", "port": 8080, "nodePort": 30080}],
         "apps[0].image"),
        ([{"name": "web", "image": "nginx", "port": 8080, "nodePort": 30080}], "apps[0].image"),
        ([{"name": "web", "image": NGINX, "port": 0, "nodePort": 30080}], "apps[0].port"),
        ([{"name": "web", "image": NGINX, "port": 8080, "nodePort": 29999}], "apps[0].nodePort"),
        ([{"name": "Web", "image": NGINX, "port": 8080, "nodePort": 30080}], "apps[0].name"),
        ([{"name": "web", "image": NGINX, "port": 8080, "serviceType": "ClusterIP",
           "nodePort": 30080}], "apps[0].nodePort"),
        ([{"name": "web", "image": NGINX, "port": 8080, "nodePort": 30080},
          {"name": "web", "image": NGINX, "port": 8081, "nodePort": 30081}], "apps[1].name"),
        ([{"name": "web", "image": NGINX, "port": 8080, "nodePort": 30080},
          {"name": "api", "image": NGINX, "port": 8081, "nodePort": 30080}], "apps[1].nodePort"),
    ],
)
def test_bad_app_configs_are_rejected(apps: list[dict[str, Any]], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_stack("aws", apps=apps)
    assert error.value.key == key


def test_same_app_name_in_two_namespaces_is_fine() -> None:
    apps = [{"name": "web", "image": NGINX, "port": 8080, "nodePort": 30080},
            {"name": "web", "image": NGINX, "port": 8080, "nodePort": 30081,
             "namespace": "staging"}]
    manifests = render(load_stack("aws", apps=apps))
    assert selection_problems(manifests) == []
    validate_all(manifests, "1.31")



# ---------------------------------------------------------------------------------------------
# Scratch volumes


SCRATCH = [{"name": "cache", "mountPath": "/var/cache/nginx", "emptyDir": {"sizeLimit": "64Mi"}},
           {"name": "ram", "mountPath": "/run/work", "emptyDir": {"medium": "Memory"}}]


@pytest.mark.parametrize("minor", [MIN_KUBERNETES_MINOR, MAX_KUBERNETES_MINOR])
def test_scratch_volumes_are_mounted_next_to_tmp_and_valid(minor: int) -> None:
    apps = [{**THREE_APPS[0], "volumes": SCRATCH}]
    config = load_stack("dev", apps=apps, kubernetesVersion=f"1.{minor}",
                        nodeImage=f"kindest/node:v1.{minor}.0")
    manifests = render(config)
    (deployment,) = [m for m in manifests if m["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["volumes"] == [
        {"name": "tmp", "emptyDir": {}},
        {"name": "cache", "emptyDir": {"sizeLimit": "64Mi"}},
        {"name": "ram", "emptyDir": {"medium": "Memory"}},
    ]
    (container,) = pod["containers"]
    assert container["volumeMounts"] == [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "cache", "mountPath": "/var/cache/nginx"},
        {"name": "ram", "mountPath": "/run/work"},
    ]
    # The root filesystem stays read-only: the volumes are the only writable places.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    validate_all(manifests, schema_version(config.cluster.kubernetes_version))


def test_adding_a_scratch_volume_changes_only_the_deployment() -> None:
    before = render(load_stack("aws"))
    after = render(load_stack("aws", apps=[{**load_stack_app("aws"), "volumes": SCRATCH[:1]}]))
    changed = [identity(b) for b, a in zip(before, after, strict=True) if a != b]
    assert changed == [("Deployment", "apps", "nginx")]


def load_stack_app(stack: str) -> dict[str, Any]:
    """The shipped stack's first app entry, as config gives it."""
    apps = stack_config(stack, {})["kubeadm-cluster:apps"]
    entries = json.loads(apps) if isinstance(apps, str) else apps
    return dict(entries[0])


# ---------------------------------------------------------------------------------------------
# Claim volumes


CLAIMS = [{"name": "data", "mountPath": "/data", "volumeClaimTemplate": {"storage": "1Gi"}},
          {"name": "seed", "mountPath": "/seed", "readOnly": True, "volumeClaimTemplate": {
              "storage": "100Mi", "accessModes": ["ReadOnlyMany"], "storageClassName": "fast"}}]


@pytest.mark.parametrize("minor", [MIN_KUBERNETES_MINOR, MAX_KUBERNETES_MINOR])
def test_an_app_with_claims_is_a_statefulset_with_a_headless_service(minor: int) -> None:
    apps = [{**THREE_APPS[0], "volumes": [*SCRATCH[:1], *CLAIMS]}]
    config = load_stack("dev", apps=apps, kubernetesVersion=f"1.{minor}",
                        nodeImage=f"kindest/node:v1.{minor}.0")
    manifests = render(config)
    assert [identity(m) for m in manifests] == [
        ("Namespace", "", "apps"),
        ("Service", "apps", "web-headless"),
        ("StatefulSet", "apps", "web"),
        ("Service", "apps", "web"),
        ("PodDisruptionBudget", "apps", "web"),
    ]
    headless = _find(manifests, "Service", "web-headless")["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["publishNotReadyAddresses"] is True
    spec = _find(manifests, "StatefulSet", "web")["spec"]
    assert spec["serviceName"] == "web-headless"
    assert spec["replicas"] == 3
    assert spec["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain", "whenScaled": "Retain"}
    assert [(c["metadata"]["name"], c["spec"]) for c in spec["volumeClaimTemplates"]] == [
        ("data", {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}),
        ("seed", {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "100Mi"}},
                  "storageClassName": "fast"}),
    ]
    pod = spec["template"]["spec"]
    # Claims are mounted by name; only scratch volumes are pod volumes.
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}},
                              {"name": "cache", "emptyDir": {"sizeLimit": "64Mi"}}]
    (container,) = pod["containers"]
    assert container["volumeMounts"] == [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "cache", "mountPath": "/var/cache/nginx"},
        {"name": "data", "mountPath": "/data"},
        {"name": "seed", "mountPath": "/seed", "readOnly": True},
    ]
    assert pod["securityContext"] == {
        "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"},
        "fsGroup": 65532, "fsGroupChangePolicy": "OnRootMismatch"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert selection_problems(manifests) == []
    validate_all(manifests, schema_version(config.cluster.kubernetes_version))


def test_claims_of_a_deleted_app_go_only_when_asked() -> None:
    apps = [{**THREE_APPS[0], "volumes": CLAIMS[:1], "fsGroup": 2000,
             "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete"}}]
    spec = _find(render(load_stack("dev", apps=apps)), "StatefulSet", "web")["spec"]
    assert spec["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Delete", "whenScaled": "Retain"}
    assert spec["template"]["spec"]["securityContext"]["fsGroup"] == 2000


def test_scaling_a_stateful_app_changes_only_its_replicas() -> None:
    apps = [{**THREE_APPS[0], "volumes": CLAIMS[:1]}]
    before = render(load_stack("dev", apps=apps))
    after = render(load_stack("dev", apps=_with(apps, 0, replicas=4)))
    assert changed_paths(before, after) == {(("StatefulSet", "apps", "web"), "spec.replicas")}
