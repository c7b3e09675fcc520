"""The API endpoint an aws cluster was initialised with, kept in the stack's state, and the check
that refuses, before anything changes, an endpoint the running cluster cannot take.

kubeadm writes its controlPlaneEndpoint into every kubeconfig it makes at `kubeadm init`
(kubelet's, kube-proxy's, the admin's, cluster-info), and "turning a single control plane
cluster created without --control-plane-endpoint into a highly available cluster is not
supported by kubeadm" (kubeadm's "Creating a cluster with kubeadm", "Considerations about
apiserver-advertise-address and ControlPlaneEndpoint"). So on a running cluster:
- an Elastic IP cluster (apiLoadBalancer false) cannot move behind the load balancers, nor
  take a second control-plane node;
- a load-balancer cluster cannot drop its load balancers, nor move them: removing or changing
  a zone or its subnet replaces them, and a replaced load balancer has a new DNS name.

The record is a Stash, `<cluster>-api-endpoint`: its output is the record of the first run
and stays so on plain updates, whatever the config says later. It is replaced with the master
instance (`replace_with`), because a new master is a new cluster (kubeadm init runs again), and
then records what that cluster is initialised with. A stack made before the record existed gets
one on its next run, saying what it has: every such stack has the Elastic IP endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar

import pulumi

EndpointKind = Literal["elastic-ip", "load-balancer"]
ELASTIC_IP: EndpointKind = "elastic-ip"
LOAD_BALANCER: EndpointKind = "load-balancer"

T = TypeVar("T")


class EndpointChangeRefused(pulumi.RunError):
    """The config asks for an API endpoint the running cluster cannot take (one line)."""


def endpoint_record(kind: EndpointKind,
                    zones: Sequence[tuple[pulumi.Input[str], str]] = ()) -> pulumi.Output[Any]:
    """What the Stash records: {"endpoint": kind}, and for the load balancers their zones as
    [[zone, subnet CIDR], ...] in zone order (zone names may be looked up: Outputs)."""
    if kind == ELASTIC_IP:
        return pulumi.Output.from_input({"endpoint": kind})
    pairs = [pulumi.Output.all(zone, cidr) for zone, cidr in zones]
    return pulumi.Output.all(*pairs).apply(
        lambda listed: {"endpoint": kind, "zones": [list(pair) for pair in listed]})


def describe_zones(zones: Sequence[Sequence[str]]) -> str:
    return ", ".join(f"{zone} ({cidr})" for zone, cidr in zones)


def refusal(cluster: str, recorded: Mapping[str, Any] | None,
            wanted: Mapping[str, Any]) -> str | None:
    """Why `wanted` cannot replace `recorded` on the running cluster (one line), or None."""
    if recorded is None or recorded == wanted:
        return None
    if recorded.get("endpoint") == ELASTIC_IP and wanted.get("endpoint") == LOAD_BALANCER:
        return (f"{cluster} was initialised with the master's Elastic IP as its API endpoint "
                "(apiLoadBalancer false): every kubeconfig in the cluster names the master, and "
                "kubeadm cannot put a load balancer in front of it later, so the cluster can take "
                "neither the API load balancers nor a second control-plane node. Keep "
                "controlPlaneNodes 1 and apiLoadBalancer false, or rebuild the cluster with them: "
                "pulumi destroy, then pulumi up (README, High availability)")
    if recorded.get("endpoint") == LOAD_BALANCER and wanted.get("endpoint") == ELASTIC_IP:
        return (f"{cluster} was initialised behind the API load balancers: every kubeconfig in "
                "the cluster names them, so they cannot go. Set apiLoadBalancer back to true "
                "(one control-plane node may keep them)")
    before, after = recorded.get("zones") or [], wanted.get("zones") or []
    keep = (f"set controlPlaneZones to [{', '.join(zone for zone, _ in before)}] and "
            f"controlPlaneSubnetCidrs to [{', '.join(cidr for _, cidr in before[1:])}]")
    if after[:len(before)] == before:
        return (f"{cluster}'s API load balancers span {describe_zones(before)}, fixed when the "
                f"cluster was made: this program does not add {describe_zones(after[len(before):])}"
                f" to a running cluster (it could not keep them from being removed later, which "
                f"replaces the load balancers). To keep the cluster, {keep}")
    return (f"{cluster}'s API load balancers span {describe_zones(before)}; "
            f"{describe_zones(after) or 'no zones'} would replace them, and with them the DNS "
            f"names every kubeconfig in the cluster names. To keep the cluster, {keep} (the "
            "zones are fixed when the cluster is made)")


def check_endpoint(cluster: str, recorded: pulumi.Input[Any],
                   wanted: pulumi.Input[Any]) -> pulumi.Output[None]:
    """None once `recorded` and `wanted` agree; EndpointChangeRefused (a RunError: Pulumi prints
    its one line, no traceback) when they do not. Unknown during a preview until the record
    is (a new record equals `wanted`)."""

    def check(pair: list[Any]) -> None:
        reason = refusal(cluster, pair[0], pair[1])
        if reason is not None:
            raise EndpointChangeRefused(reason)

    return pulumi.Output.all(recorded, wanted).apply(check)


def gated(checked: pulumi.Output[None], value: pulumi.Input[T]) -> pulumi.Output[T]:
    """`value`, once `checked` passed: a resource given it is never declared after a refusal."""
    return pulumi.Output.all(checked, value).apply(lambda pair: pair[1])


def record_endpoint(name: str, wanted: pulumi.Input[Any], cluster: str,
                    new_cluster_with: pulumi.Resource,
                    parent: pulumi.Resource) -> pulumi.Output[None]:
    """The Stash `name` (replaced with `new_cluster_with`, the master instance) and the check
    of `wanted` against what it recorded: check_endpoint's Output."""
    stash = pulumi.Stash(name, input=wanted, opts=pulumi.ResourceOptions(
        parent=parent, replace_with=[new_cluster_with]))
    return check_endpoint(cluster, stash.output, wanted)
