"""The cluster's default StorageClass where the target does not bring one: on EC2, the Amazon
EBS CSI driver from its published Helm chart, with the StorageClass `gp3` (encrypted) marked as
the default.

The driver acts with the nodes' instance role (components/targets/aws_node_role.py), whose
policy only lets it create volumes tagged for this cluster and attach, detach, modify or delete
volumes carrying that tag: `controller.k8sTagClusterId` makes the driver put
`ebs.csi.aws.com/cluster-name: <cluster>` on every volume it creates (the driver's
docs/tagging.md), which is the tag the policy's conditions test.

The local target needs none of this: its node image applies its own default storage at init
(kubeadm-init.sh, DEFAULT_STORAGE=kind).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as kubernetes

from components.config import DEFAULT_STORAGE_CLASS

# The chart's repository and release (github.com/kubernetes-sigs/aws-ebs-csi-driver,
# charts/aws-ebs-csi-driver/Chart.yaml: chart 2.64.0 ships driver 1.64.0).
EBS_CSI_CHART = "aws-ebs-csi-driver"
EBS_CSI_CHART_VERSION = "2.64.0"
EBS_CSI_REPOSITORY = "https://kubernetes-sigs.github.io/aws-ebs-csi-driver"
# The class config checks claims against (config.DEFAULT_STORAGE_CLASS), made here.
EBS_STORAGE_CLASS = str(DEFAULT_STORAGE_CLASS["aws"])
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"


def ebs_csi_values(cluster_name: str, region: str) -> dict[str, Any]:
    """The chart values: cluster-tagged volumes, the region without asking IMDS, and the
    default StorageClass gp3 (encrypted with the account's default EBS key, bound where the
    pod is scheduled, expandable)."""
    return {
        "controller": {
            "k8sTagClusterId": cluster_name,
            "region": region,
        },
        "storageClasses": [{
            "name": EBS_STORAGE_CLASS,
            "annotations": {DEFAULT_CLASS_ANNOTATION: "true"},
            "volumeBindingMode": "WaitForFirstConsumer",
            "reclaimPolicy": "Delete",
            "allowVolumeExpansion": True,
            "parameters": {"type": "gp3", "encrypted": "true"},
        }],
    }


@dataclass(frozen=True)
class EbsCsiDriverArgs:
    cluster_name: str
    region: str


class EbsCsiDriver:
    """Declares the driver through the cluster's Kubernetes provider (Workloads calls
    `declare`, so that apps with claims come after it)."""

    def __init__(self, args: EbsCsiDriverArgs) -> None:
        self._args = args

    def declare(self, name: str, opts: pulumi.ResourceOptions) -> pulumi.Resource:
        """A Helm release `<name>-ebs-csi-driver` in kube-system; Helm waits until the
        controller and the node plugin are ready, and rolls a failed install back.

        Never uninstalled by Pulumi (retain_on_delete): when the control plane is rebuilt, the
        release is created again in the new cluster, and `helm uninstall` there would fail
        (no such release); on `pulumi destroy` the driver keeps serving until the nodes go,
        so claims deleted on the way out can still have their volumes deleted."""
        return kubernetes.helm.v3.Release(
            f"{name}-ebs-csi-driver",
            name="aws-ebs-csi-driver",
            chart=EBS_CSI_CHART,
            version=EBS_CSI_CHART_VERSION,
            repository_opts=kubernetes.helm.v3.RepositoryOptsArgs(repo=EBS_CSI_REPOSITORY),
            namespace="kube-system",
            values=ebs_csi_values(self._args.cluster_name, self._args.region),
            atomic=True,
            timeout=600,
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
                retain_on_delete=True)),
        )
