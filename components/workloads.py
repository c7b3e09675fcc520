"""Apps from config -> Kubernetes objects on the cluster: Namespace, Deployment (StatefulSet and
its headless Service for an app with claim volumes), Service, PDB.

Every object is first rendered as a plain manifest dict by a pure function
(`namespace_manifest`, `deployment_manifest`, `service_manifest`, `pdb_manifest`); the Pulumi
resources are built from exactly those dicts, so what the tests and kubernetes-validate check
is what the provider receives. One source of truth, no YAML.

Choices (see also the README's day-2 section):

- Probes are `tcpSocket` on the named container port `http`: an app only has to listen, not
  answer 2xx/3xx on some path, so any TCP server configured here works. Readiness gates the
  Service endpoints and the rolling update (maxUnavailable 0, maxSurge 1: a new pod must be
  ready before an old one goes); liveness restarts a process that stopped listening.
- `readOnlyRootFilesystem: true` with an emptyDir on /tmp. nginx-unprivileged (the default
  app) keeps its pid file and temp paths in /tmp, so it runs unchanged. An image that writes
  elsewhere (e.g. /var/cache, /run) fails with "Read-only file system" and needs a writable
  path: an app setting for that does not exist yet.
- `runAsNonRoot: true` (pod and container) with the image's own user: the image must declare
  a numeric non-root USER (nginx-unprivileged: 101). Capabilities: drop ALL, add the app's list.
  seccomp RuntimeDefault, no privilege escalation, no service-account token, no service links.
- PodDisruptionBudget `maxUnavailable: 1` (only when replicas > 1): a drain evicts one pod at a
  time whatever the replica count (minAvailable 1 would let a drain take 5 of 6 at once), and
  never blocks a drain for good. From Kubernetes 1.27 on `unhealthyPodEvictionPolicy:
  AlwaysAllow` also lets a drain evict pods that are not ready (a crash-looping app would
  otherwise hold every scale-in of the cluster until the drain times out).
- The namespace enforces the `restricted` Pod Security Standard when its apps add no
  capability other than NET_BIND_SERVICE, else `baseline`; it always warns and audits on
  `restricted`. Built-in namespaces (default, kube-*) are used but never created or deleted.
- LoadBalancer Services get `pulumi.com/skipAwait: "true"`: a kubeadm cluster has no load
  balancer controller, so the ingress address never appears and the provider's await would
  time out. Their node port still works (http://<app host>:<nodePort>).
- Volumes: an emptyDir per scratch volume (and /tmp); an app with a volumeClaimTemplate is a
  StatefulSet, one claim per volume and replica, with a headless Service `<app>-headless`
  (stable pod DNS names), `persistentVolumeClaimRetentionPolicy` whenScaled Retain (always)
  and whenDeleted from config (Retain by default), and the pod's `fsGroup` so a non-root app
  can write to its claims. Both kinds stay under the restricted Pod Security Standard: the
  root filesystem stays read-only, the volumes are the writable places.
- `metadata.name` is fixed (app name) so URLs and kubectl commands are predictable; with a
  fixed name the provider replaces delete-before-create when an immutable field changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pulumi
import pulumi_kubernetes as kubernetes

from components.config import (
    DEFAULT_KUBERNETES_VERSION,
    TMP_VOLUME,
    AppConfig,
    AppVolume,
    ClaimVolume,
    KubernetesVersion,
    ScratchVolume,
    ServiceType,
)
from policy.references import RESTRICTED_ADDABLE_CAPABILITIES

LABEL_NAME = "app.kubernetes.io/name"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "pulumi"
PORT_NAME = "http"
HOSTNAME_TOPOLOGY_KEY = "kubernetes.io/hostname"
SKIP_AWAIT = "pulumi.com/skipAwait"
BUILTIN_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
# Capabilities the `restricted` Pod Security Standard lets a container add.
# unhealthyPodEvictionPolicy: beta and on by default from 1.27 (GA in 1.31).
UNHEALTHY_POD_EVICTION_MINOR = 27
# preStop's `sleep` action: beta and on by default from 1.30 (GA in 1.34), no binary needed in
# the image. A pod that is going away keeps serving for PRE_STOP_SLEEP_SECONDS while kube-proxy
# removes it from the Service's endpoints on every node; without it, requests that still reach
# it are refused or reset (measured in the real e2e: 12 of 608 failed during a roll-out).
PRE_STOP_SLEEP_MINOR = 30
PRE_STOP_SLEEP_SECONDS = 5

Manifest = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Pure manifest builders


def selector_labels(app: AppConfig, cluster_name: str) -> dict[str, str]:
    """The immutable subset of the labels: Deployment selector, Service selector, PDB selector."""
    return {LABEL_NAME: app.name, LABEL_PART_OF: cluster_name}


def app_labels(app: AppConfig, cluster_name: str) -> dict[str, str]:
    return {**selector_labels(app, cluster_name), LABEL_MANAGED_BY: MANAGED_BY}


def namespace_labels(apps: Sequence[AppConfig], cluster_name: str) -> dict[str, str]:
    adds = {cap for app in apps for cap in app.capabilities}
    enforce = "restricted" if adds <= RESTRICTED_ADDABLE_CAPABILITIES else "baseline"
    return {
        LABEL_PART_OF: cluster_name,
        LABEL_MANAGED_BY: MANAGED_BY,
        "pod-security.kubernetes.io/enforce": enforce,
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
    }


def namespace_manifest(namespace: str, apps: Sequence[AppConfig], cluster_name: str) -> Manifest:
    """The Namespace for `apps` (all of which live in `namespace`)."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "labels": namespace_labels(apps, cluster_name)},
    }


def _probe(initial_delay: int, period: int) -> dict[str, Any]:
    return {
        "tcpSocket": {"port": PORT_NAME},
        "initialDelaySeconds": initial_delay,
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }


def container_security_context(app: AppConfig) -> dict[str, Any]:
    capabilities: dict[str, Any] = {"drop": ["ALL"]}
    if app.capabilities:
        capabilities["add"] = list(app.capabilities)
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": capabilities,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def empty_dir(volume: ScratchVolume) -> dict[str, str]:
    spec = {"medium": volume.medium} if volume.medium else {}
    if volume.size_limit:
        spec["sizeLimit"] = volume.size_limit
    return spec


def volume_mount(volume: AppVolume) -> dict[str, Any]:
    mount: dict[str, Any] = {"name": volume.name, "mountPath": volume.mount_path}
    if volume.read_only:
        mount["readOnly"] = True
    return mount


def pod_template(
    app: AppConfig, cluster_name: str, kubernetes_version: KubernetesVersion
) -> Manifest:
    """The pod template of an app's Deployment or StatefulSet. Claim volumes are mounted by
    name; the StatefulSet's volumeClaimTemplates provide them, so they are not pod volumes."""
    selector = selector_labels(app, cluster_name)
    volumes = (TMP_VOLUME, *app.volumes)
    container = {
        "name": app.name,
        "image": app.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": PORT_NAME, "containerPort": app.port, "protocol": "TCP"}],
        "readinessProbe": _probe(initial_delay=2, period=5),
        "livenessProbe": _probe(initial_delay=10, period=10),
        "resources": {
            "requests": {"cpu": app.cpu_request, "memory": app.memory_request},
            "limits": {"cpu": app.cpu_limit, "memory": app.memory_limit},
        },
        "securityContext": container_security_context(app),
        "volumeMounts": [volume_mount(v) for v in volumes],
    }
    if kubernetes_version.minor >= PRE_STOP_SLEEP_MINOR:
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": PRE_STOP_SLEEP_SECONDS}}}
    security: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    if app.stateful:
        # The claims' files belong to this group, which the app's process gets whatever its
        # user; OnRootMismatch: a large volume is not walked again on every start.
        security["fsGroup"] = app.fs_group
        security["fsGroupChangePolicy"] = "OnRootMismatch"
    return {
        "metadata": {"labels": app_labels(app, cluster_name)},
        "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": security,
            "containers": [container],
            "volumes": [{"name": v.name, "emptyDir": empty_dir(v)}
                        for v in volumes if isinstance(v, ScratchVolume)],
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": HOSTNAME_TOPOLOGY_KEY,
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": selector},
                }
            ],
        },
    }


def workload_manifest(
    kind: str, app: AppConfig, cluster_name: str, kubernetes_version: KubernetesVersion,
    **spec: Any,
) -> Manifest:
    """The app's Deployment or StatefulSet: what both share (name, labels, replicas,
    selector, pod template), plus the kind's own `spec` fields."""
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": app.name, "namespace": app.namespace,
                     "labels": app_labels(app, cluster_name)},
        "spec": {
            "replicas": app.replicas,
            "selector": {"matchLabels": selector_labels(app, cluster_name)},
            **spec,
            "template": pod_template(app, cluster_name, kubernetes_version),
        },
    }


def deployment_manifest(
    app: AppConfig,
    cluster_name: str,
    kubernetes_version: KubernetesVersion = DEFAULT_KUBERNETES_VERSION,
) -> Manifest:
    return workload_manifest(
        "Deployment", app, cluster_name, kubernetes_version,
        strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
    )


def headless_service_name(app: AppConfig) -> str:
    """The StatefulSet's governing Service: each pod is <app>-<ordinal>.<this>.<namespace>."""
    return f"{app.name}-headless"


def statefulset_manifest(
    app: AppConfig,
    cluster_name: str,
    kubernetes_version: KubernetesVersion = DEFAULT_KUBERNETES_VERSION,
) -> Manifest:
    """An app with claim volumes: one claim per volume and replica, named
    <volume>-<app>-<ordinal>, which follows the replica's ordinal. Scaling down keeps the
    claims (a replica that comes back finds its data); deleting the app keeps them unless
    claims_when_deleted is Delete."""
    claims = [
        {
            "metadata": {"name": v.name, "labels": app_labels(app, cluster_name)},
            "spec": {
                "accessModes": list(v.access_modes),
                "resources": {"requests": {"storage": v.storage}},
                **({"storageClassName": v.storage_class_name} if v.storage_class_name else {}),
            },
        }
        for v in app.volumes if isinstance(v, ClaimVolume)
    ]
    return workload_manifest(
        "StatefulSet", app, cluster_name, kubernetes_version,
        serviceName=headless_service_name(app),
        updateStrategy={"type": "RollingUpdate"},
        persistentVolumeClaimRetentionPolicy={"whenDeleted": app.claims_when_deleted,
                                              "whenScaled": "Retain"},
        volumeClaimTemplates=claims,
    )


def headless_service_manifest(app: AppConfig, cluster_name: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": headless_service_name(app), "namespace": app.namespace,
                     "labels": app_labels(app, cluster_name)},
        "spec": {
            "clusterIP": "None",
            "selector": selector_labels(app, cluster_name),
            "ports": [{"name": PORT_NAME, "port": app.port, "targetPort": PORT_NAME,
                       "protocol": "TCP"}],
            # Pods have DNS names from their start, before they are ready (peer discovery).
            "publishNotReadyAddresses": True,
        },
    }


def service_manifest(app: AppConfig, cluster_name: str) -> Manifest:
    port: dict[str, Any] = {
        "name": PORT_NAME,
        "port": app.port,
        "targetPort": PORT_NAME,
        "protocol": "TCP",
    }
    if app.node_port is not None and app.service_type != "ClusterIP":
        port["nodePort"] = app.node_port
    metadata: dict[str, Any] = {
        "name": app.name,
        "namespace": app.namespace,
        "labels": app_labels(app, cluster_name),
    }
    if app.service_type == "LoadBalancer":
        metadata["annotations"] = {SKIP_AWAIT: "true"}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "type": app.service_type,
            "selector": selector_labels(app, cluster_name),
            "ports": [port],
        },
    }


def pdb_manifest(
    app: AppConfig,
    cluster_name: str,
    kubernetes_version: KubernetesVersion = DEFAULT_KUBERNETES_VERSION,
) -> Manifest | None:
    """A PodDisruptionBudget for apps with more than one replica, else None."""
    if app.replicas <= 1:
        return None
    spec: dict[str, Any] = {
        "maxUnavailable": 1,
        "selector": {"matchLabels": selector_labels(app, cluster_name)},
    }
    if kubernetes_version.minor >= UNHEALTHY_POD_EVICTION_MINOR:
        spec["unhealthyPodEvictionPolicy"] = "AlwaysAllow"
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {
            "name": app.name,
            "namespace": app.namespace,
            "labels": app_labels(app, cluster_name),
        },
        "spec": spec,
    }


def apps_by_namespace(apps: Sequence[AppConfig]) -> dict[str, list[AppConfig]]:
    grouped: dict[str, list[AppConfig]] = {}
    for app in apps:
        grouped.setdefault(app.namespace, []).append(app)
    return grouped


def app_manifests(
    app: AppConfig,
    cluster_name: str,
    kubernetes_version: KubernetesVersion = DEFAULT_KUBERNETES_VERSION,
) -> list[Manifest]:
    """Deployment (or, with claim volumes, StatefulSet and its headless Service), Service and
    (replicas > 1) PodDisruptionBudget of one app."""
    pdb = pdb_manifest(app, cluster_name, kubernetes_version)
    workload = (
        [headless_service_manifest(app, cluster_name),
         statefulset_manifest(app, cluster_name, kubernetes_version)]
        if app.stateful else [deployment_manifest(app, cluster_name, kubernetes_version)]
    )
    return [
        *workload,
        service_manifest(app, cluster_name),
        *([pdb] if pdb is not None else []),
    ]


def render_manifests(
    apps: Sequence[AppConfig],
    cluster_name: str,
    kubernetes_version: KubernetesVersion = DEFAULT_KUBERNETES_VERSION,
) -> list[Manifest]:
    """Every object the Workloads component declares, in declaration order."""
    rendered = [
        namespace_manifest(namespace, members, cluster_name)
        for namespace, members in apps_by_namespace(apps).items()
        if namespace not in BUILTIN_NAMESPACES
    ]
    for app in apps:
        rendered.extend(app_manifests(app, cluster_name, kubernetes_version))
    return rendered


class WorkloadSwitchRefused(pulumi.RunError):
    """An app that ran as a StatefulSet would become a Deployment and leave its claims."""


STATEFUL_SET = "StatefulSet"
ABANDONED = "Deployment (volume claims abandoned)"


def recorded_workload(app: AppConfig) -> str:
    """What an app's Stash is given: StatefulSet, Deployment, or ABANDONED."""
    if app.stateful:
        return STATEFUL_SET
    return ABANDONED if app.abandon_volume_claims else "Deployment"


def claim_templates(app: AppConfig) -> str:
    """An app's volumeClaimTemplates as its claims Stash records them (one line, in order)."""
    return "; ".join(
        f"{v.name} {v.storage} {','.join(v.access_modes)} {v.storage_class_name or '(default)'}"
        for v in app.volumes if isinstance(v, ClaimVolume))


def check_workload_switches(
    apps: Sequence[AppConfig], recorded: Sequence[Any], recorded_claims: Sequence[Any],
) -> None:
    """Refuse (WorkloadSwitchRefused, every such app in one message), with one value per app
    in `recorded` (its workload Stash) and `recorded_claims` (its claims Stash; None when it
    has none yet):
    - an app recorded as a StatefulSet that config now makes a Deployment, unless it sets
      abandonVolumeClaims (removing an app, or adding claims to one, is never refused);
    - a stateful app whose claim templates differ from those its StatefulSet was made with:
      Kubernetes forbids changing them, and replacing the StatefulSet stops every replica at
      once (and, with whenDeleted Delete, deletes the claims)."""
    refused = []
    for index, (app, last, claims) in enumerate(
            zip(apps, recorded, recorded_claims, strict=True)):
        if app.stateful and claims is not None and claims != claim_templates(app):
            refused.append(
                f"apps[{index}] ({app_key(app)}): its volumeClaimTemplates changed from "
                f"'{claims}' to '{claim_templates(app)}'; a StatefulSet's claim templates cannot "
                "change, and replacing it would stop every replica at once. Put them back. To "
                f"grow a claim whose StorageClass allows it: kubectl -n {app.namespace} patch pvc "
                f"<volume>-{app.name}-<ordinal> -p "
                "'{\"spec\":{\"resources\":{\"requests\":{\"storage\":\"<size>\"}}}}'. For any "
                "other change, remove the app (its claims stay) and add it back in a later run")
        if app.stateful or app.abandon_volume_claims or last != STATEFUL_SET:
            continue
        refused.append(
            f"apps[{index}] ({app_key(app)}) ran as a StatefulSet with volume claims; without a "
            "volumeClaimTemplate it would become a Deployment that no longer mounts them (they "
            f"stay: kubectl -n {app.namespace} get pvc -l {LABEL_NAME}={app.name}). Keep its "
            f"volumeClaimTemplate, or set apps[{index}].abandonVolumeClaims to true to go ahead")
    if refused:
        raise WorkloadSwitchRefused("\n".join(refused))


def retained_namespaces(apps: Sequence[AppConfig]) -> set[str]:
    """Namespaces holding an app whose claims outlive it (whenDeleted Retain): the program
    never deletes them, or the claims would go with them."""
    return {app.namespace for app in apps
            if app.stateful and app.claims_when_deleted == "Retain"}


def cluster_url(app: AppConfig) -> str:
    """The in-cluster URL of an app's Service."""
    return f"http://{app.name}.{app.namespace}.svc.cluster.local:{app.port}"


def node_port_url(host: str, node_port: int | None) -> str:
    if node_port is None:
        # Only under mocks or before the API server has answered: a real Service of type
        # NodePort or LoadBalancer always has its port allocated.
        return f"http://{host}:<nodePort not allocated>"
    return f"http://{host}:{int(node_port)}"


def app_key(app: AppConfig) -> str:
    """How an app is keyed in the outputs: `namespace/name` (names repeat across namespaces)."""
    return f"{app.namespace}/{app.name}"


# ---------------------------------------------------------------------------------------------
# The component


class StorageDriver(Protocol):
    """A cluster's default StorageClass that the program installs (components/storage.py)."""

    def declare(self, name: str, opts: pulumi.ResourceOptions) -> pulumi.Resource: ...


@dataclass(frozen=True)
class WorkloadsArgs:
    apps: Sequence[AppConfig]
    kubeconfig: pulumi.Input[str]  # secret; becomes the explicit provider's kubeconfig
    # The cluster's readiness gate: every object waits for it, and is created again when it
    # is replaced (a new control plane: its trigger is the master machine).
    ready: pulumi.Resource
    app_host: pulumi.Input[str]  # where users reach node ports (127.0.0.1, the master's EIP)
    cluster_name: str  # the part-of label
    kubernetes_version: KubernetesVersion = DEFAULT_KUBERNETES_VERSION
    # Declared through the provider before the apps; stateful apps wait for it.
    storage: StorageDriver | None = None


@dataclass(frozen=True)
class AppEndpoints:
    """Where one app can be reached."""

    name: str
    namespace: str
    workload_kind: str  # Deployment, or StatefulSet for an app with claim volumes
    workload_name: str
    service_name: str
    service_type: ServiceType
    cluster_url: str  # http://<svc>.<ns>.svc.cluster.local:<port>, from inside the cluster
    node_port: pulumi.Output[int | None] | None  # None for ClusterIP
    # http://<app host>:<nodePort> for NodePort and LoadBalancer, else the in-cluster URL.
    url: pulumi.Output[str]


AppObject = (
    kubernetes.apps.v1.Deployment
    | kubernetes.apps.v1.StatefulSet
    | kubernetes.core.v1.Service
    | kubernetes.policy.v1.PodDisruptionBudget
)
# Resource class and resource-name suffix of each namespaced kind render_manifests produces.
APP_OBJECT_KINDS: dict[str, tuple[type[AppObject], str]] = {
    "Deployment": (kubernetes.apps.v1.Deployment, "deployment"),
    "StatefulSet": (kubernetes.apps.v1.StatefulSet, "statefulset"),
    "Service": (kubernetes.core.v1.Service, "service"),
    "PodDisruptionBudget": (kubernetes.policy.v1.PodDisruptionBudget, "pdb"),
}


class Workloads(pulumi.ComponentResource):
    """The configured apps on the cluster, through one explicit Kubernetes provider."""

    provider: kubernetes.Provider
    namespaces: dict[str, kubernetes.core.v1.Namespace]
    apps: dict[str, AppEndpoints]
    urls: pulumi.Output[dict[str, str]]

    def __init__(
        self, name: str, args: WorkloadsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("kubeadm-cluster:workloads:Workloads", name, None, opts)
        self.provider = kubernetes.Provider(
            f"{name}-provider",
            kubeconfig=pulumi.Output.secret(args.kubeconfig),
            # A fixed identifier: a new kubeconfig (a rebuilt control plane) is an update of the
            # provider, never a replacement. Replacing it made the engine close the old
            # provider while it still had to delete the apps through it ("grpc: the client
            # connection is closing"). The apps follow a new cluster through `replace_with`
            # below instead. Stacks made before keep the identifier they have (ignored).
            cluster_identifier=args.cluster_name,
            # `pulumi destroy` after the nodes are gone drops the objects from state.
            delete_unreachable=True,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["clusterIdentifier"]),
        )
        self._ready = args.ready
        # Every app object's spec waits for this check, so a refused change declares none.
        recorded = [self._workload_stash(app).output for app in args.apps]
        recorded_claims = [self._claims_stash(app) for app in args.apps]
        self._switches_checked: pulumi.Output[None] = pulumi.Output.all(
            pulumi.Output.all(*recorded), pulumi.Output.all(*recorded_claims),
        ).apply(lambda both: check_workload_switches(tuple(args.apps), both[0], both[1]))
        self._retained = retained_namespaces(args.apps)
        self.storage = (args.storage.declare(name, self._opts())
                        if args.storage is not None else None)

        # Exactly what render_manifests returns (and the tests check), namespaces first.
        self.namespaces = {}
        services: dict[str, kubernetes.core.v1.Service] = {}
        for manifest in render_manifests(args.apps, args.cluster_name, args.kubernetes_version):
            declared = self._declare(manifest)
            if isinstance(declared, kubernetes.core.v1.Service):
                services[f"{manifest['metadata']['namespace']}/{manifest['metadata']['name']}"] = (
                    declared
                )
        self.apps = {
            app_key(app): self._endpoints(app, services[app_key(app)], args.app_host)
            for app in args.apps
        }

        self.urls = pulumi.Output.all(
            **{key: endpoints.url for key, endpoints in self.apps.items()}
        )
        self.register_outputs({
            "apps": {
                key: {
                    "namespace": e.namespace,
                    "workload": f"{e.workload_kind}/{e.workload_name}",
                    "service": e.service_name,
                    "serviceType": e.service_type,
                    "clusterUrl": e.cluster_url,
                    "url": e.url,
                }
                for key, e in self.apps.items()
            },
            "urls": self.urls,
        })

    def _workload_stash(self, app: AppConfig) -> pulumi.Stash:
        """`<namespace>/<app>-workload`: a Stash (a value kept in the stack's state) whose
        output is what the app was recorded as. A plain update keeps that output; it is
        replaced, and so recorded anew, whenever the app is a StatefulSet or abandons its
        claims. So it says StatefulSet from the app's first run with claims until the user
        opts out, whatever runs fail in between; and a refresh changes nothing."""
        stateful_or_abandoned = app.stateful or app.abandon_volume_claims
        return pulumi.Stash(
            f"{app_key(app)}-workload",
            input=recorded_workload(app),
            opts=pulumi.ResourceOptions(
                parent=self, replace_on_changes=["input"] if stateful_or_abandoned else []),
        )

    def _claims_stash(self, app: AppConfig) -> pulumi.Output[Any] | None:
        """`<namespace>/<app>-claims`, for a stateful app: its claim templates as its
        StatefulSet was made with them (a plain update keeps them; the Stash goes with the
        claims' StatefulSet, when the app goes or abandons its claims)."""
        if not app.stateful:
            return None
        return pulumi.Stash(f"{app_key(app)}-claims", input=claim_templates(app),
                            opts=pulumi.ResourceOptions(parent=self)).output

    def _opts(self, *after: pulumi.Resource) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(
            parent=self, provider=self.provider, depends_on=[self._ready, *after],
            # Names are fixed, so a replacement (a rebuilt control plane, or an immutable
            # field) can never be created before the old object is deleted.
            delete_before_replace=True,
            # The readiness gate is replaced exactly when the control plane is a new machine
            # (its trigger): the objects are then created again, in the new cluster.
            replace_with=[self._ready],
        )

    def _declare(self, manifest: Manifest) -> kubernetes.core.v1.Namespace | AppObject:
        metadata = manifest["metadata"]
        if manifest["kind"] == "Namespace":
            opts = self._opts()
            if metadata["name"] in self._retained:
                # Deleting it would delete the claims its stateful apps retain, and their data.
                opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
                    retain_on_delete=True))
            namespace = kubernetes.core.v1.Namespace(
                f"{metadata['name']}-namespace", metadata=metadata, opts=opts
            )
            self.namespaces[metadata["name"]] = namespace
            return namespace
        resource_class, suffix = APP_OBJECT_KINDS[manifest["kind"]]
        after: list[pulumi.Resource] = [self.namespaces[metadata["namespace"]]] \
            if metadata["namespace"] in self.namespaces else []
        if manifest["kind"] == "StatefulSet" and self.storage is not None:
            after.append(self.storage)
        spec = self._switches_checked.apply(lambda _: manifest["spec"])
        return resource_class(
            f"{metadata['namespace']}/{metadata['name']}-{suffix}",
            metadata=metadata,
            spec=spec,
            opts=self._opts(*after),
        )

    @staticmethod
    def _endpoints(
        app: AppConfig, service: kubernetes.core.v1.Service, app_host: pulumi.Input[str]
    ) -> AppEndpoints:
        node_port: pulumi.Output[int | None] | None = None
        if app.service_type == "ClusterIP":
            url = pulumi.Output.from_input(cluster_url(app))
        else:
            if app.node_port is not None:
                node_port = pulumi.Output.from_input(app.node_port)
            else:
                # Allocated by the API server: read it back from the live Service.
                node_port = service.spec.apply(lambda spec: _first_node_port(spec))
            url = pulumi.Output.all(app_host, node_port).apply(
                lambda pair: node_port_url(pair[0], pair[1])
            )
        return AppEndpoints(
            name=app.name,
            namespace=app.namespace,
            workload_kind="StatefulSet" if app.stateful else "Deployment",
            workload_name=app.name,
            service_name=app.name,
            service_type=app.service_type,
            cluster_url=cluster_url(app),
            node_port=node_port,
            url=url,
        )


def _first_node_port(spec: Any) -> int | None:
    """The node port of a live Service's first port (typed provider output), if allocated."""
    ports = getattr(spec, "ports", None) if spec is not None else None
    value = getattr(ports[0], "node_port", None) if ports else None
    return int(value) if value is not None else None
