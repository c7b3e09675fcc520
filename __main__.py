"""Wiring only: config -> target hosts -> kubeadm cluster -> workloads -> exports."""

import gc

import pulumi

from components.config import load_stack_config
from components.kubeadm import KubeadmCluster, KubeadmClusterArgs
from components.storage import EbsCsiDriver, EbsCsiDriverArgs
from components.targets import docker_host as docker_host_facts
from components.targets.aws import AwsHosts, AwsHostsArgs
from components.targets.local import LocalHosts, LocalHostsArgs
from components.targets.machines import MachineHosts, MachineHostsArgs
from components.workloads import Workloads, WorkloadsArgs

# The SDK keeps every resource's inputs and outputs alive to the end of the program, so
# CPython's default collector thresholds rescan a growing heap again and again: about a
# quarter of the evaluation time of a 100-worker stack (benchmarks/bringup.py).
gc.freeze()
gc.set_threshold(100_000, 50, 100)

config = load_stack_config()

target: AwsHosts | LocalHosts | MachineHosts
if config.target == "aws":
    target = aws_hosts = AwsHosts(config.cluster_name, AwsHostsArgs(config))
elif config.target == "machines":
    target = machine_hosts = MachineHosts(config.cluster_name, MachineHostsArgs(config))
else:
    # The engine's host is checked before anything is declared (inotify limits, /dev/mapper).
    docker_host = docker_host_facts.inspect_docker_host(
        provider_host=pulumi.Config("docker").get("host"))
    docker_host_facts.check_docker_host(docker_host, config.control_plane_nodes + config.workers)
    target = LocalHosts(config.cluster_name, LocalHostsArgs(config, docker_host))
hosts = target.cluster_hosts

cluster = KubeadmCluster(config.cluster_name, KubeadmClusterArgs(config.cluster, hosts))

workloads = Workloads(
    f"{config.cluster_name}-apps",
    WorkloadsArgs(
        apps=config.apps,
        kubeconfig=cluster.kubeconfig,
        ready=cluster.ready,
        app_host=hosts.app_host,
        cluster_name=config.cluster_name,
        kubernetes_version=config.cluster.kubernetes_version,
        # EC2 has no StorageClass of its own; the local node image applies its own at init.
        storage=EbsCsiDriver(EbsCsiDriverArgs(config.cluster_name, config.aws.region))
        if config.aws is not None else None,
    ),
)

pulumi.export("target", config.target)
pulumi.export("apiServer", pulumi.Output.concat("https://", hosts.api_endpoint))
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("nodeNames", cluster.node_names)
pulumi.export("nodePrivateIps", cluster.node_private_ips)
pulumi.export("apps", {
    key: {"namespace": app.namespace, "service": app.service_name, "url": app.url,
          "workload": f"{app.workload_kind}/{app.workload_name}"}
    for key, app in workloads.apps.items()
})
if config.target == "aws":
    pulumi.export("masterPublicIp", aws_hosts.master_public_ip)
    pulumi.export("sshCommands", aws_hosts.ssh_commands)
    pulumi.export("sshKnownHosts", aws_hosts.ssh_known_hosts)
    if aws_hosts.ssh_private_key is not None:
        pulumi.export("sshPrivateKey", aws_hosts.ssh_private_key)
if config.target == "machines":
    pulumi.export("sshCommands", machine_hosts.ssh_commands)
    pulumi.export("sshKnownHosts", machine_hosts.ssh_known_hosts)
