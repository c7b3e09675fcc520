"""The nodes' IAM role and instance profile: what the EBS CSI driver (components/storage.py)
may do with the instance's credentials, and nothing more.

Least privilege, scoped to this cluster: the conditions follow the driver's own
cluster-scoped policy (github.com/kubernetes-sigs/aws-ebs-csi-driver,
docs/AmazonEBSCSIDriverEKSClusterScopedPolicy.json), with the cluster's name in place of the
EKS principal tag and the stack's region in every ARN, and without snapshots (no snapshot
controller is installed):

- describe calls (they take no resource-level conditions);
- CreateVolume only with the request tag `ebs.csi.aws.com/cluster-name: <cluster>`, and
  CreateTags only as part of that CreateVolume;
- Attach/Detach/Modify/DeleteVolume only on volumes carrying that tag;
- Attach/DetachVolume only to instances tagged `kubeadm-cluster: <cluster>` (this cluster's
  nodes).

So no node, and no pod on one (pods reach the instance's credentials through IMDSv2, hop
limit 2), can touch another cluster's volumes or attach a volume to another cluster's node.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

# The tag the driver puts on every volume it creates when k8sTagClusterId is set.
VOLUME_CLUSTER_TAG = "ebs.csi.aws.com/cluster-name"


def assume_role_policy() -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            # The EC2 service principal is ec2.amazonaws.com in every partition.
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }],
    })


def partition(region: str) -> str:
    """The ARN partition of a region: aws, aws-cn (cn-*) or aws-us-gov (us-gov-*)."""
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws-us-gov" if region.startswith("us-gov-") else "aws"


def ebs_csi_policy(cluster: str, region: str, instance_tag: str) -> dict[str, Any]:
    """The role's only policy document: the EBS CSI driver's needs, limited to `cluster`'s
    volumes and instances in `region`."""
    volumes = f"arn:{partition(region)}:ec2:{region}:*:volume/*"
    instances = f"arn:{partition(region)}:ec2:{region}:*:instance/*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Describe",
                "Effect": "Allow",
                "Action": [
                    "ec2:DescribeAvailabilityZones",
                    "ec2:DescribeInstances",
                    "ec2:DescribeInstanceTypes",
                    "ec2:DescribeSnapshots",
                    "ec2:DescribeVolumes",
                    "ec2:DescribeVolumesModifications",
                    "ec2:DescribeVolumeStatus",
                ],
                "Resource": "*",
            },
            {
                "Sid": "CreateClusterVolumes",
                "Effect": "Allow",
                "Action": ["ec2:CreateVolume"],
                "Resource": volumes,
                "Condition": {"StringEquals": {f"aws:RequestTag/{VOLUME_CLUSTER_TAG}": cluster}},
            },
            {
                "Sid": "TagVolumesOnCreation",
                "Effect": "Allow",
                "Action": ["ec2:CreateTags"],
                "Resource": volumes,
                "Condition": {"StringEquals": {"ec2:CreateAction": "CreateVolume"}},
            },
            {
                "Sid": "ManageClusterVolumes",
                "Effect": "Allow",
                "Action": ["ec2:AttachVolume", "ec2:DetachVolume", "ec2:ModifyVolume",
                           "ec2:DeleteVolume"],
                "Resource": volumes,
                "Condition": {"StringEquals": {f"ec2:ResourceTag/{VOLUME_CLUSTER_TAG}": cluster}},
            },
            {
                "Sid": "AttachToClusterNodes",
                "Effect": "Allow",
                "Action": ["ec2:AttachVolume", "ec2:DetachVolume"],
                "Resource": instances,
                "Condition": {"StringEquals": {f"ec2:ResourceTag/{instance_tag}": cluster}},
            },
        ],
    }


@dataclass(frozen=True)
class NodeRole:
    role: aws.iam.Role
    policy: aws.iam.RolePolicy
    profile: aws.iam.InstanceProfile


def build_node_role(
    cluster: str, region: str, instance_tag: str, tags: dict[str, str], parent: pulumi.Resource
) -> NodeRole:
    """`<cluster>-node-role` with its one inline policy, and the instance profile every node
    launches with (adding it to a running instance is an in-place update)."""
    opts = pulumi.ResourceOptions(parent=parent)
    role = aws.iam.Role(
        f"{cluster}-node-role",
        assume_role_policy=assume_role_policy(),
        description=f"kubeadm-cluster {cluster} nodes: the EBS CSI driver, this cluster's "
                    "volumes only",
        tags=tags,
        opts=opts,
    )
    policy = aws.iam.RolePolicy(
        f"{cluster}-node-ebs-csi",
        role=role.id,
        policy=json.dumps(ebs_csi_policy(cluster, region, instance_tag)),
        opts=opts,
    )
    profile = aws.iam.InstanceProfile(
        f"{cluster}-node-profile", role=role.name, tags=tags, opts=opts,
    )
    return NodeRole(role=role, policy=policy, profile=profile)
