"""The Workloads component under Pulumi mocks: the explicit provider, the readiness gate,
what is declared for each app, what changes between runs, and the app URLs.

Stand-ins: the readiness gate is a `pulumi_command.local.Command` that never runs (mocks), and
the kubeconfig is the fake admin.conf from conftest, passed as a secret like KubeadmCluster's.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_command
import pytest

from components.config import load_stack_config
from components.workloads import (
    ABANDONED,
    Workloads,
    WorkloadsArgs,
    WorkloadSwitchRefused,
    check_workload_switches,
    claim_templates,
    render_manifests,
)
from tests.conftest import (
    FAKE_ADMIN_CONF,
    FAKE_EIP,
    ComponentRunner,
    ProgramMocks,
    ProgramRun,
    Registration,
)
from tests.test_workloads_manifests import (
    NGINX,
    THREE_APPS,
    flatten,
    identity,
    load_stack,
    selection_problems,
)

K8S_PREFIX = "kubernetes:"
PROVIDER_TYPE = "pulumi:providers:kubernetes"
COMPONENT_TYPE = "kubeadm-cluster:workloads:Workloads"
HOSTS = {"dev": "127.0.0.1", "aws": FAKE_EIP}

THREE_APPS_AWS: list[dict[str, Any]] = [
    *THREE_APPS[:2],
    # On EC2 the node port may be left to the API server.
    {"name": "shop", "image": "example/shop:1.0.4", "replicas": 1, "port": 8081,
     "serviceType": "LoadBalancer"},
]


class Deployed:
    """One run of the component: its registrations plus the component object."""

    def __init__(self, run: ProgramRun, workloads: Workloads) -> None:
        self.run = run
        self.workloads = workloads

    @property
    def kubernetes_objects(self) -> list[Registration]:
        return [r for r in self.run.resources if r.type.startswith(K8S_PREFIX)]

    @property
    def names(self) -> set[tuple[str, str]]:
        return {(r.type, r.name) for r in self.kubernetes_objects}

    def inputs(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {(r.type, r.name): r.inputs for r in self.kubernetes_objects}

    def urls(self) -> dict[str, str]:
        return dict(self.run.resolve(self.workloads.urls))


def deploy(
    run_components: ComponentRunner,
    stack: str = "dev",
    plain_kubeconfig: bool = False,
    **overrides: Any,
) -> Deployed:
    holder: dict[str, Workloads] = {}

    def program() -> None:
        config = load_stack_config()
        ready = pulumi_command.local.Command("cluster-ready", create="true")
        host = HOSTS[stack]
        holder["workloads"] = Workloads(
            "workloads",
            WorkloadsArgs(
                apps=config.apps,
                kubeconfig=FAKE_ADMIN_CONF if plain_kubeconfig
                else pulumi.Output.secret(FAKE_ADMIN_CONF),
                ready=ready,
                app_host=pulumi.Output.from_input(host),
                cluster_name=config.cluster_name,
                kubernetes_version=config.cluster.kubernetes_version,
            ),
        )

    run = run_components(program, stack=stack, **overrides)
    return Deployed(run, holder["workloads"])


@pytest.fixture
def allocating_mocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Like the API server, give a Service port without a nodePort one from the range."""
    original: Callable[..., Any] = ProgramMocks.new_resource

    def new_resource(self: ProgramMocks, args: pulumi.runtime.MockResourceArgs) -> Any:
        resource_id, outputs = original(self, args)
        if args.typ == "kubernetes:core/v1:Service":
            outputs = copy.deepcopy(outputs)
            spec = outputs.get("spec", {})
            if spec.get("type") in ("NodePort", "LoadBalancer"):
                for port in spec.get("ports", []):
                    port.setdefault("nodePort", 31234)
        return resource_id, outputs

    monkeypatch.setattr(ProgramMocks, "new_resource", new_resource)


# ---------------------------------------------------------------------------------------------
# Provider, readiness gate, parents


@pytest.mark.parametrize("stack", ["dev", "aws"])
def test_explicit_provider_with_secret_kubeconfig(
    run_components: ComponentRunner, stack: str
) -> None:
    deployed = deploy(run_components, stack)
    (provider,) = deployed.run.of_type(PROVIDER_TYPE)
    assert "kubeconfig" in provider.secret_inputs
    assert provider.inputs["kubeconfig"] == FAKE_ADMIN_CONF
    assert provider.inputs["deleteUnreachable"] in (True, "true")
    assert provider.inputs["clusterIdentifier"] == f"kubeadm-{stack}"
    (component,) = deployed.run.of_type(COMPONENT_TYPE)
    assert provider.parent == component.urn


def test_kubeconfig_is_secret_even_when_given_plain(run_components: ComponentRunner) -> None:
    deployed = deploy(run_components, "dev", plain_kubeconfig=True)
    (provider,) = deployed.run.of_type(PROVIDER_TYPE)
    assert "kubeconfig" in provider.secret_inputs


@pytest.mark.parametrize("overrides", [{}, {"apps": THREE_APPS}], ids=["default", "three-apps"])
def test_every_object_waits_for_ready_and_uses_the_provider(
    run_components: ComponentRunner, overrides: dict[str, Any]
) -> None:
    deployed = deploy(run_components, "dev", **overrides)
    run = deployed.run
    ready = run.named("cluster-ready")
    (provider,) = run.of_type(PROVIDER_TYPE)
    (component,) = run.of_type(COMPONENT_TYPE)
    objects = deployed.kubernetes_objects
    assert objects
    for obj in objects:
        assert ready.urn in obj.dependencies, obj.name  # directly, not only through others
        assert run.depends_on(obj, ready)
        assert obj.provider.startswith(provider.urn + "::"), obj.name
        assert obj.parent == component.urn
    # Objects in a namespace wait for it (fixed names carry no dependency by themselves).
    namespaces = {
        r.inputs["metadata"]["name"]: r for r in run.of_type("kubernetes:core/v1:Namespace")
    }
    for obj in objects:
        ns = obj.inputs["metadata"].get("namespace")
        if ns in namespaces:
            assert run.depends_on(obj, namespaces[ns]), obj.name


# ---------------------------------------------------------------------------------------------
# What is declared


def test_default_nginx_objects(run_components: ComponentRunner) -> None:
    deployed = deploy(run_components, "dev")
    assert deployed.names == {
        ("kubernetes:core/v1:Namespace", "apps-namespace"),
        ("kubernetes:apps/v1:Deployment", "apps/nginx-deployment"),
        ("kubernetes:core/v1:Service", "apps/nginx-service"),
        ("kubernetes:policy/v1:PodDisruptionBudget", "apps/nginx-pdb"),
    }
    deployment = deployed.run.named("apps/nginx-deployment")
    # Fixed name: no auto-naming suffix.
    assert deployment.inputs["metadata"]["name"] == "nginx"
    assert deployment.inputs["spec"]["replicas"] == 2


STATEFUL_APP = {"name": "db", "image": NGINX, "replicas": 2, "port": 8080,
                "volumes": [{"name": "data", "mountPath": "/data",
                             "volumeClaimTemplate": {"storage": "1Gi",
                                                     "storageClassName": "gp3"}}]}


@pytest.mark.parametrize("stack, apps", [("dev", THREE_APPS), ("aws", THREE_APPS_AWS),
                                         ("dev", [*THREE_APPS, STATEFUL_APP])])
def test_registered_objects_are_the_rendered_manifests(
    run_components: ComponentRunner, stack: str, apps: list[dict[str, Any]]
) -> None:
    """One source of truth: what the provider receives equals what the tests validate."""
    deployed = deploy(run_components, stack, apps=apps)
    registered = [
        {"apiVersion": r.inputs["apiVersion"], "kind": r.inputs["kind"],
         **{k: v for k, v in r.inputs.items() if k not in ("apiVersion", "kind")}}
        for r in deployed.kubernetes_objects
    ]
    config = load_stack(stack, apps=apps)
    rendered = render_manifests(config.apps, config.cluster_name,
                                config.cluster.kubernetes_version)
    assert sorted(map(identity, registered)) == sorted(map(identity, rendered))
    by_key = {identity(m): m for m in registered}
    for manifest in rendered:
        # Numbers come back from the engine as floats: compare leaf by leaf (2 == 2.0).
        assert flatten(by_key[identity(manifest)]) == flatten(manifest), identity(manifest)
    assert selection_problems(registered) == []


# ---------------------------------------------------------------------------------------------
# Changes between runs


def test_scale_changes_only_that_deployments_inputs(run_components: ComponentRunner) -> None:
    before = deploy(run_components, "dev", apps=THREE_APPS).inputs()
    scaled = copy.deepcopy(THREE_APPS)
    scaled[1]["replicas"] = 5
    after = deploy(run_components, "dev", apps=scaled).inputs()
    assert before.keys() == after.keys()
    changed = {key for key in before if before[key] != after[key]}
    api = ("kubernetes:apps/v1:Deployment", "backend/api-deployment")
    assert changed == {api}
    old, new = flatten(before[api]), flatten(after[api])
    assert {path for path in old.keys() | new.keys() if old.get(path) != new.get(path)} == {
        "spec.replicas"
    }


def test_adding_and_removing_an_app_touches_only_its_objects(
    run_components: ComponentRunner,
) -> None:
    three = deploy(run_components, "dev", apps=THREE_APPS)
    two = deploy(run_components, "dev", apps=[THREE_APPS[0], THREE_APPS[2]])
    # Removing api removes its Deployment, Service, PDB and its now-empty namespace.
    assert three.names - two.names == {
        ("kubernetes:core/v1:Namespace", "backend-namespace"),
        ("kubernetes:apps/v1:Deployment", "backend/api-deployment"),
        ("kubernetes:core/v1:Service", "backend/api-service"),
        ("kubernetes:policy/v1:PodDisruptionBudget", "backend/api-pdb"),
    }
    assert two.names <= three.names
    before, after = three.inputs(), two.inputs()
    assert all(before[key] == after[key] for key in after), "a kept object's inputs changed"

    # Adding a one-replica app in an existing namespace adds exactly its Deployment + Service.
    extra = {"name": "docs", "image": NGINX, "replicas": 1, "port": 8080, "nodePort": 30082}
    four = deploy(run_components, "dev", apps=[*THREE_APPS, extra])
    assert four.names - three.names == {
        ("kubernetes:apps/v1:Deployment", "apps/docs-deployment"),
        ("kubernetes:core/v1:Service", "apps/docs-service"),
    }
    assert three.names <= four.names
    assert all(three.inputs()[key] == four.inputs()[key] for key in three.inputs())


# ---------------------------------------------------------------------------------------------
# Endpoints


@pytest.mark.parametrize("stack", ["dev", "aws"])
def test_default_nginx_url(run_components: ComponentRunner, stack: str) -> None:
    deployed = deploy(run_components, stack)
    expected = {"dev": "http://127.0.0.1:30080", "aws": f"http://{FAKE_EIP}:30080"}[stack]
    assert deployed.urls() == {"apps/nginx": expected}
    endpoints = deployed.workloads.apps["apps/nginx"]
    assert (endpoints.namespace, endpoints.service_name, endpoints.workload_name) == (
        "apps", "nginx", "nginx")
    assert endpoints.cluster_url == "http://nginx.apps.svc.cluster.local:8080"
    assert deployed.run.resolve(endpoints.node_port) == 30080


def test_a_stateful_app_is_reached_through_its_service_like_any_app(
    run_components: ComponentRunner,
) -> None:
    deployed = deploy(run_components, "dev", apps=[STATEFUL_APP])
    assert {
        ("kubernetes:apps/v1:StatefulSet", "apps/db-statefulset"),
        ("kubernetes:core/v1:Service", "apps/db-headless-service"),
        ("kubernetes:core/v1:Service", "apps/db-service"),
    } <= deployed.names
    endpoints = deployed.workloads.apps["apps/db"]
    assert (endpoints.workload_kind, endpoints.workload_name, endpoints.service_name) == (
        "StatefulSet", "db", "db")
    assert deployed.urls() == {"apps/db": "http://127.0.0.1:30080"}


def test_three_app_urls_on_dev(run_components: ComponentRunner) -> None:
    deployed = deploy(run_components, "dev", apps=THREE_APPS)
    assert deployed.urls() == {
        "apps/web": "http://127.0.0.1:30080",
        "backend/api": "http://api.backend.svc.cluster.local:9000",
        "apps/shop": "http://127.0.0.1:30081",
    }
    assert deployed.workloads.apps["backend/api"].node_port is None


@pytest.mark.usefixtures("allocating_mocks")
def test_allocated_node_port_is_read_from_the_service(run_components: ComponentRunner) -> None:
    deployed = deploy(run_components, "aws", apps=THREE_APPS_AWS)
    urls = deployed.urls()
    assert urls["apps/web"] == f"http://{FAKE_EIP}:30080"  # fixed
    assert urls["apps/shop"] == f"http://{FAKE_EIP}:31234"  # allocated by the "API server"
    assert deployed.run.named("apps/shop-service").inputs["spec"]["ports"][0].get(
        "nodePort") is None


def test_component_outputs_are_registered(run_components: ComponentRunner) -> None:
    deployed = deploy(run_components, "dev", apps=THREE_APPS)
    assert set(deployed.workloads.apps) == {"apps/web", "backend/api", "apps/shop"}
    shop = deployed.workloads.apps["apps/shop"]
    assert shop.service_type == "LoadBalancer"
    assert not deployed.run.is_secret(shop.url)


# ---------------------------------------------------------------------------------------------
# The whole program (__main__.py wiring with the real targets and KubeadmCluster)


@pytest.mark.parametrize("stack, url", [("dev", "http://127.0.0.1:30080"),
                                        ("aws", f"http://{FAKE_EIP}:30080")])
def test_program_wires_workloads_after_the_readiness_gate(
    run_program: Callable[..., ProgramRun], stack: str, url: str
) -> None:
    run = run_program(stack)
    assert run.output("apps")["apps/nginx"]["url"] == url
    (ready,) = [r for r in run.resources if r.name == f"kubeadm-{stack}-ready"]
    (provider,) = run.of_type(PROVIDER_TYPE)
    assert "kubeconfig" in provider.secret_inputs
    objects = [r for r in run.resources if r.type.startswith(K8S_PREFIX)]
    # Namespace, Deployment, Service, PDB; on aws also the EBS CSI driver's Helm release.
    assert len(objects) == {"dev": 4, "aws": 5}[stack]
    for obj in objects:
        assert run.depends_on(obj, ready), obj.name
        assert obj.provider.startswith(provider.urn + "::"), obj.name


def test_on_aws_the_ebs_csi_driver_comes_before_stateful_apps_and_keeps_their_namespace(
    run_program: Callable[..., ProgramRun],
) -> None:
    claim = {"name": "data", "mountPath": "/data", "volumeClaimTemplate": {"storage": "1Gi"}}
    run = run_program("aws", apps=[
        {"name": "db", "image": NGINX, "port": 8080, "namespace": "data", "volumes": [claim]},
        {"name": "web", "image": NGINX, "port": 8080, "nodePort": 30080},
    ])
    (driver,) = run.of_type("kubernetes:helm.sh/v3:Release")
    assert driver.inputs["chart"] == "aws-ebs-csi-driver"
    assert driver.inputs["namespace"] == "kube-system"
    assert driver.inputs["values"]["controller"]["k8sTagClusterId"] == "kubeadm-aws"
    (stateful,) = run.of_type("kubernetes:apps/v1:StatefulSet")
    (deployment,) = run.of_type("kubernetes:apps/v1:Deployment")
    assert run.depends_on(stateful, driver)
    assert not run.depends_on(deployment, driver)
    namespaces = {r.name: r for r in run.of_type("kubernetes:core/v1:Namespace")}
    # Deleting `data` would delete the claims db retains; `apps` holds no claim.
    assert namespaces["data-namespace"].retain_on_delete
    assert not namespaces["apps-namespace"].retain_on_delete


def test_dev_installs_no_storage_driver(run_program: Callable[..., ProgramRun]) -> None:
    assert run_program("dev").of_type("kubernetes:helm.sh/v3:Release") == []


def test_a_new_control_plane_recreates_the_apps_but_keeps_the_provider(
    run_program: Callable[..., ProgramRun],
) -> None:
    """Every object is replaced with the readiness gate (replaced when the master machine is
    new); the provider's identifier never changes, so a rebuild only updates it."""
    run = run_program("dev")
    (provider,) = run.of_type(PROVIDER_TYPE)
    assert provider.inputs["clusterIdentifier"] == "kubeadm-dev"
    assert provider.ignore_changes == ["clusterIdentifier"]
    (ready,) = [r for r in run.resources if r.name == "kubeadm-dev-ready"]
    objects = [r for r in run.resources if r.type.startswith(K8S_PREFIX)]
    assert objects and all(r.replace_with == [ready.urn] for r in objects)


def test_fixed_name_objects_are_replaced_delete_first(
    run_program: Callable[..., ProgramRun],
) -> None:
    run = run_program("dev")
    objects = [r for r in run.resources if r.type.startswith(K8S_PREFIX)]
    assert objects and all(r.delete_before_replace for r in objects)


# ---------------------------------------------------------------------------------------------
# A StatefulSet never silently becomes a Deployment


WEB = {"name": "web", "image": NGINX, "port": 8080, "nodePort": 30081}
# What each app's Stash recorded in earlier runs (web first, then db).
RECORDED: list[str | None] = ["Deployment", "StatefulSet"]


def test_a_stateful_app_that_loses_its_claims_is_refused() -> None:
    db = {**STATEFUL_APP, "volumes": []}
    apps = load_stack("dev", apps=[WEB, db]).apps
    with pytest.raises(WorkloadSwitchRefused) as refused:
        check_workload_switches(apps, RECORDED, [None, None])
    message = str(refused.value)
    assert message.startswith("apps[1] (apps/db) ran as a StatefulSet with volume claims")
    assert "set apps[1].abandonVolumeClaims to true" in message
    assert "kubectl -n apps get pvc -l app.kubernetes.io/name=db" in message
    # Opting in, keeping the claims, an app abandoned earlier, or a new app: all fine.
    opted = load_stack("dev", apps=[WEB, {**db, "abandonVolumeClaims": True}]).apps
    kept = load_stack("dev", apps=[WEB, STATEFUL_APP]).apps
    cases: list[tuple[Any, list[str | None]]] = [
        (opted, RECORDED), (kept, RECORDED), (apps, ["Deployment", ABANDONED]),
        (apps, ["Deployment", None])]
    for fine, recorded in cases:
        claims = [None, claim_templates(fine[1])] if fine[1].stateful else [None, None]
        check_workload_switches(fine, recorded, claims)


def test_a_stateful_apps_claim_templates_never_change_behind_its_back() -> None:
    made = load_stack("dev", apps=[WEB, STATEFUL_APP]).apps
    assert claim_templates(made[1]) == "data 1Gi ReadWriteOnce gp3"
    grown = {**STATEFUL_APP, "volumes": [{"name": "data", "mountPath": "/data",
                                          "volumeClaimTemplate": {"storage": "2Gi"}}]}
    apps = load_stack("dev", apps=[WEB, grown]).apps
    with pytest.raises(WorkloadSwitchRefused) as refused:
        check_workload_switches(apps, RECORDED, [None, claim_templates(made[1])])
    message = str(refused.value)
    assert message.startswith("apps[1] (apps/db): its volumeClaimTemplates changed from "
                              "'data 1Gi ReadWriteOnce gp3' to 'data 2Gi ReadWriteOnce (default)'")
    assert "kubectl -n apps patch pvc <volume>-db-<ordinal>" in message
    # The same templates, or a first run, pass.
    check_workload_switches(made, RECORDED, [None, claim_templates(made[1])])
    check_workload_switches(apps, RECORDED, [None, None])


def test_each_app_records_its_workload_in_a_stash_renewed_only_when_stateful_or_abandoned(
    run_program: Callable[..., ProgramRun],
) -> None:
    db = {**STATEFUL_APP, "volumes": [], "abandonVolumeClaims": True}
    run = run_program("dev", apps=[WEB, STATEFUL_APP, {**db, "name": "old"}])
    stashes = {r.name: r for r in run.of_type("pulumi:index:Stash")}
    assert {name: (r.inputs["input"], r.replace_on_changes) for name, r in stashes.items()} == {
        "apps/web-workload": ("Deployment", []),
        "apps/db-workload": ("StatefulSet", ["input"]),
        "apps/db-claims": ("data 1Gi ReadWriteOnce gp3", []),
        "apps/old-workload": (ABANDONED, ["input"]),
    }
    assert all(r.parent == run.named("kubeadm-dev-apps").urn for r in stashes.values())


def test_the_program_declares_no_deployment_when_a_switch_is_refused(
    run_program: Callable[..., ProgramRun], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ProgramMocks, "stashed", {"apps/db-workload": "StatefulSet"})
    db = {**STATEFUL_APP, "volumes": []}
    run = run_program("dev", apps=[WEB, db], expect_error=True)
    assert "apps[1] (apps/db) ran as a StatefulSet" in str(run.error)
    assert run.of_type("kubernetes:apps/v1:Deployment") == []


def test_an_app_that_abandons_its_claims_becomes_a_deployment(
    run_program: Callable[..., ProgramRun], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ProgramMocks, "stashed", {"apps/db-workload": "StatefulSet"})
    db = {**STATEFUL_APP, "volumes": [], "abandonVolumeClaims": True}
    ok = run_program("dev", apps=[WEB, db])
    assert {r.name for r in ok.of_type("kubernetes:apps/v1:Deployment")} == {
        "apps/web-deployment", "apps/db-deployment"}
    assert ok.output("apps")["apps/db"]["workload"] == "Deployment/db"
