"""Modelled duration of each kind of step the program declares, with where each figure comes from.

A step is matched by its resource type and, for commands, by the suffix of its name (the
kubeadm step graph names every command `<node>-<step>`). The figure is the time from the
engine starting the create to the engine seeing it done. Remote (SSH) commands also pay for
one SSH connection each (SSH_CONNECT_SECONDS); `docker exec` pays DOCKER_EXEC_SECONDS.

Sources (fetched late 2026; "estimate" means no published measurement was found and says why):

[ec2-boot]  brevdev/ec2-coldboot-research (t3.medium and five other families, 2025): cold launch
            25.8 s on average = RunInstances API 19 %, pending->running 69 % (16.4-16.6 s for
            every family), boot->SSH 12 % (3.2 s on Amazon Linux 2023).
            daemonology.net "EC2 boot time benchmarking" (2021, c5.xlarge): RunInstances 1.5 s,
            pending->running 4.9 s, running->port 22 closed 17.2 s, closed->open 5.6 s; Ubuntu
            AMIs are among the slower Linux images there. martysweet.co.uk "EC2 launch times"
            (Oct 2023): encrypted EBS (which this program sets) slows the launch.
[kubeadm]   kubernetes/kubernetes PR #117984 (2023): logs of repeated `kubeadm init` runs, "All
            control plane components are healthy after 24.0-28.0 seconds", 41-55 s for the
            whole unit from start to end.
[time-to-k8s] minikube's time-to-k8s benchmark, v1.26.1 page (kind v0.14): kind "Command Exec"
            (create the node container, kubeadm init, CNI) 21.0 s, "App Running" 23.8 s,
            total 46.6 s; k3d 33.2 s total.
[real]      this repository's real-container tests (tests/real/test_install.py), which write
            .cache/real-timings.json: preflight.sh 0.11 s and install-runtime.sh 17.6 s
            (Debian's docker.io from a nearby mirror) on a fresh Debian machine container.
[kind]      kubernetes-sigs/kind waits at most 30 s for systemd in a node container
            (FACTS.md); kind's node image ships kubeadm, kubelet, containerd and the images.
"""

from __future__ import annotations

from dataclasses import dataclass

SSH_CONNECT_SECONDS = 1.0  # estimate: TCP + SSH handshake + auth over the Internet, ~3-5 RTTs
DOCKER_EXEC_SECONDS = 0.1  # estimate: a `docker exec` round trip on the local engine
UNKNOWN_STEP_SECONDS = 5.0  # anything not in the table below; reported as "unmodelled"

# Resource types that do no work of their own at deploy time (no engine slot, no duration).
# Providers only hold configuration.
# A Stash is written into the state by the engine itself: no provider call, no wait.
NO_WORK_TYPE_PREFIXES = ("kubeadm-cluster:", "pulumi:pulumi:Stack", "pulumi:providers:",
                         "pulumi:index:Stash")


@dataclass(frozen=True)
class StepKind:
    label: str
    type: str  # exact resource type, or a prefix ending in ':' for a family
    suffix: str | None  # name suffix for commands; None matches any name
    seconds: float
    source: str
    # False: nothing runs and nothing is dialled when it is created (a command with no create).
    dials: bool = True


STEP_KINDS: tuple[StepKind, ...] = (
    # -- AWS network, firewall, key: one or two control-plane API calls each ---------------
    StepKind("VPC", "aws:ec2/vpc:Vpc", None, 3.0,
             "estimate: CreateVpc + two ModifyVpcAttribute calls (DNS support/hostnames)"),
    StepKind("internet gateway", "aws:ec2/internetGateway:InternetGateway", None, 2.0,
             "estimate: create + attach, two API calls"),
    StepKind("subnet", "aws:ec2/subnet:Subnet", None, 2.0,
             "estimate: CreateSubnet + ModifySubnetAttribute (public IP on launch)"),
    StepKind("route table", "aws:ec2/routeTable:RouteTable", None, 2.0,
             "estimate: CreateRouteTable + CreateRoute"),
    StepKind("route table association", "aws:ec2/routeTableAssociation:RouteTableAssociation",
             None, 1.0, "estimate: one API call"),
    StepKind("security group", "aws:ec2/securityGroup:SecurityGroup", None, 3.0,
             "estimate: create + revoke the default egress rule + wait for it"),
    StepKind("security group rule", "aws:vpc/", None, 1.0, "estimate: one API call"),
    StepKind("key pair", "aws:ec2/keyPair:KeyPair", None, 1.0, "estimate: ImportKeyPair"),
    StepKind("generated SSH key", "tls:index/privateKey:PrivateKey", None, 0.1,
             "estimate: local key generation"),
    StepKind("elastic IP", "aws:ec2/eip:Eip", None, 1.0, "estimate: AllocateAddress"),
    StepKind("EIP association", "aws:ec2/eipAssociation:EipAssociation", None, 2.0,
             "estimate: AssociateAddress once the instance is running"),
    StepKind("NAT gateway", "aws:ec2/natGateway:NatGateway", None, 120.0,
             "estimate: the provider waits for state 'available', typically 1-2 minutes "
             "(only with privateWorkers)"),
    StepKind("network load balancer (API, apiLoadBalancer)", "aws:lb/loadBalancer:LoadBalancer",
             None, 180.0,
             "estimate: the provider waits for state 'active'; AWS says setting one up can "
             "take a few minutes (Network Load Balancer user guide), so 3 minutes"),
    StepKind("target group (API)", "aws:lb/targetGroup:TargetGroup", None, 1.0,
             "estimate: CreateTargetGroup + ModifyTargetGroupAttributes"),
    StepKind("listener (API)", "aws:lb/listener:Listener", None, 1.0,
             "estimate: CreateListener, once the load balancer is active"),
    StepKind("target registration (API)",
             "aws:lb/targetGroupAttachment:TargetGroupAttachment", None, 1.0,
             "estimate: RegisterTargets; the provider does not wait for the health checks "
             "(AWS: registration and the first checks can take a few minutes more)"),
    StepKind("EC2 instance", "aws:ec2/instance:Instance", None, 20.0,
             "[ec2-boot] RunInstances ~1.5-5 s + pending->running ~16.5 s; the provider "
             "returns at 'running'"),
    # -- kubeadm steps over SSH on EC2 (Ubuntu 24.04) --------------------------------------
    StepKind("wait for sshd, from this machine (EC2)", "command:local:Command", "-ssh-wait",
             23.0, "[ec2-boot] running->sshd open ~23 s (wait-for-ssh.sh polls every 3 s)"),
    StepKind("wait for sshd, from the master (EC2, private workers)", "command:remote:Command",
             "-ssh-wait", 23.0, "[ec2-boot] running->sshd open ~23 s, polled from the master"),
    StepKind("install: preflight + runtime (EC2)", "command:remote:Command",
             "-install", 57.0,
             "one step running two scripts, once sshd answers: cloud-init's first boot "
             "(estimate ~10 s), which preflight waits "
             "for, checks 0.1 s [real]; install-runtime [real] 17.6 s measured here from a "
             "nearby Debian mirror, estimate x2.5 (45 s) on a fresh Ubuntu image (cold apt "
             "index, Docker's repository, slower disk)"),
    StepKind("control plane's kubernetes step, created (EC2)", "command:remote:Command",
             "-master-kubernetes", 25.0,
             "install-kubeadm estimate 25 s (repository key + index + kubelet/kubeadm/kubectl/"
             "cri-tools, ~90 MB)"),
    StepKind("worker's kubernetes step, created (EC2)", "command:remote:Command",
             "-kubernetes", 0.0,
             "nothing runs and nothing is dialled when it is created (pulumi-command's create "
             "is unset; it runs only when kubernetesVersion changes)", dials=False),
    StepKind("kubeadm init (EC2)", "command:remote:Command", "-init", 60.0,
             "[kubeadm] 41-55 s for init including image pulls; plus the flannel "
             "manifest apply (estimate 5-10 s)"),
    StepKind("join token (EC2)", "command:remote:Command", "-join-token", 1.0,
             "estimate: `kubeadm token create`, one API round trip on the master"),
    StepKind("kubeadm join (EC2)", "command:remote:Command", "-join", 45.0,
             "install-kubeadm at the control plane's release, estimate 25 s (as on the "
             "control plane), then join, estimate 20 s: discovery + TLS bootstrap + kubelet "
             "start, ~half of init's control-plane wait [kubeadm]"),
    StepKind("control-plane scheduling (EC2)", "command:remote:Command",
             "-control-plane-scheduling", 1.0, "estimate: one kubectl taint/label call"),
    StepKind("drain-on-delete marker (EC2)", "command:remote:Command", "-drain", 1.0,
             "estimate: create runs one `kubectl get node`"),
    StepKind("kubeconfig (EC2)", "command:remote:Command", "-kubeconfig", 0.5,
             "estimate: `cat admin.conf`"),
    StepKind("readiness gate (EC2)", "command:remote:Command", "-ready", 45.0,
             "estimate: the last joined node pulls the flannel and kube-proxy images and "
             "turns Ready; [time-to-k8s] shows 15-24 s from API up to an app running with "
             "preloaded images, doubled for the pulls"),
    # -- local: kind node containers ------------------------------------------------------
    StepKind("node image", "docker:index/remoteImage:RemoteImage", None, 1.0,
             "estimate: image already present (keep_locally); the first pull of kindest/node "
             "(~1 GB) happens once, whatever the worker count"),
    StepKind("docker network", "docker:index/network:Network", None, 0.5,
             "estimate: one engine API call"),
    StepKind("node container", "docker:index/container:Container", None, 2.0,
             "estimate: create + start a container with a fresh anonymous volume"),
    StepKind("load balancer configuration (local)", "command:local:Command",
             "-load-balancer-config", 0.5,
             "estimate: one `docker exec` writing HAProxy's file, its config check and reload"),
    StepKind("systemd wait (kind)", "command:local:Command", "-systemd", 5.0,
             "[kind] bounded at 30 s by kind; estimate 5 s for systemd to reach multi-user"),
    StepKind("kubeadm init (kind)", "command:local:Command", "-init", 20.0,
             "[time-to-k8s] kind's whole create (container + init + CNI) is 21.0 s"),
    StepKind("join token (kind)", "command:local:Command", "-join-token", 1.0,
             "estimate: `kubeadm token create`"),
    StepKind("kubeadm join (kind)", "command:local:Command", "-join", 10.0,
             "estimate: images preloaded in the node image; TLS bootstrap + kubelet start"),
    StepKind("control-plane scheduling (kind)", "command:local:Command",
             "-control-plane-scheduling", 1.0, "estimate: one kubectl call"),
    StepKind("drain-on-delete marker (kind)", "command:local:Command", "-drain", 1.0,
             "estimate: one kubectl call"),
    StepKind("kubeconfig (kind)", "command:local:Command", "-kubeconfig", 0.5,
             "estimate: `cat admin.conf`"),
    StepKind("readiness gate (kind)", "command:local:Command", "-ready", 15.0,
             "estimate: kindnet and kube-proxy start from preloaded images; [time-to-k8s] "
             "15-24 s from API up to an app running"),
    # -- workloads ---------------------------------------------------------------------------
    StepKind("namespace", "kubernetes:core/v1:Namespace", None, 1.0, "estimate: one API call"),
    StepKind("service", "kubernetes:core/v1:Service", None, 1.0,
             "estimate: one API call (NodePort: no load balancer to wait for)"),
    StepKind("disruption budget", "kubernetes:policy/v1:PodDisruptionBudget", None, 1.0,
             "estimate: one API call"),
    StepKind("deployment rollout", "kubernetes:apps/v1:Deployment", None, 20.0,
             "[time-to-k8s] 'App Running' 14.9-23.8 s (image pull + readiness); the await "
             "logic waits for every replica Ready"),
)


def step_kind(resource_type: str, name: str) -> StepKind | None:
    """The table row for a resource, or None when the table has no row for it."""
    best: StepKind | None = None
    for kind in STEP_KINDS:
        type_matches = (
            resource_type.startswith(kind.type) if kind.type.endswith(("/", ":"))
            else resource_type == kind.type
        )
        if not type_matches:
            continue
        if kind.suffix is not None and not name.endswith(kind.suffix):
            continue
        # The longest matching suffix wins ("-join-token" over "-join").
        if best is None or len(kind.suffix or "") > len(best.suffix or ""):
            best = kind
    return best


def does_no_work(resource_type: str) -> bool:
    return resource_type.startswith(NO_WORK_TYPE_PREFIXES)


def transport_overhead(resource_type: str) -> float:
    if resource_type == "command:remote:Command":
        return SSH_CONNECT_SECONDS
    if resource_type == "command:local:Command":
        return DOCKER_EXEC_SECONDS
    return 0.0


def modelled_seconds(resource_type: str, name: str) -> tuple[float, StepKind | None]:
    """Modelled duration of one resource's create, and the row it came from (None: unknown)."""
    if does_no_work(resource_type):
        return 0.0, None
    kind = step_kind(resource_type, name)
    base = kind.seconds if kind is not None else UNKNOWN_STEP_SECONDS
    overhead = transport_overhead(resource_type) if kind is None or kind.dials else 0.0
    return base + overhead, kind


def markdown_table() -> str:
    """The table as Markdown, for the README or a reviewer (`python -m benchmarks.durations`)."""
    lines = ["| step | resource type | name suffix | seconds | source |", "|---|---|---|---|---|"]
    for kind in STEP_KINDS:
        lines.append(
            f"| {kind.label} | `{kind.type}` | {f'`{kind.suffix}`' if kind.suffix else ''} "
            f"| {kind.seconds:g} | {kind.source} |"
        )
    lines.append(
        f"\nEvery SSH command also pays {SSH_CONNECT_SECONDS:g} s to connect and every "
        f"`docker exec` {DOCKER_EXEC_SECONDS:g} s (estimates)."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
