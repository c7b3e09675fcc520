"""The nodes' IAM policy: the EBS CSI driver's actions, each write limited to this cluster."""

from __future__ import annotations

from typing import Any

from components.targets.aws import CLUSTER_TAG
from components.targets.aws_node_role import VOLUME_CLUSTER_TAG, ebs_csi_policy, partition

CLUSTER = "kubeadm-aws"
REGION = "eu-west-1"


def statements() -> list[dict[str, Any]]:
    policy = ebs_csi_policy(CLUSTER, REGION, CLUSTER_TAG)
    assert policy["Version"] == "2012-10-17"
    found: list[dict[str, Any]] = policy["Statement"]
    assert all(s["Effect"] == "Allow" for s in found)
    return found


def allowed(action: str, resource: str) -> list[dict[str, Any]]:
    """The conditions under which `action` on an ARN of kind `resource` is allowed (one per
    statement that allows it; {} means unconditionally)."""
    kind = {"volume": ":volume/*", "instance": ":instance/*"}.get(resource, "*")
    return [s.get("Condition", {}) for s in statements() if action in s["Action"]
            and (s["Resource"] == "*" or s["Resource"].endswith(kind))]


def test_only_describe_calls_are_unconditional() -> None:
    for statement in statements():
        writes = [a for a in statement["Action"] if not a.startswith("ec2:Describe")]
        if statement["Resource"] == "*":
            assert writes == [], statement["Sid"]
        else:
            assert statement["Condition"], statement["Sid"]
            assert statement["Resource"].startswith(f"arn:aws:ec2:{REGION}:*:")


def test_volumes_are_created_and_managed_only_with_this_clusters_tag() -> None:
    assert allowed("ec2:CreateVolume", "volume") == [
        {"StringEquals": {f"aws:RequestTag/{VOLUME_CLUSTER_TAG}": CLUSTER}}]
    for action in ("ec2:AttachVolume", "ec2:DetachVolume", "ec2:ModifyVolume",
                   "ec2:DeleteVolume"):
        assert allowed(action, "volume") == [
            {"StringEquals": {f"ec2:ResourceTag/{VOLUME_CLUSTER_TAG}": CLUSTER}}], action
    # Tags only as part of creating a volume: no retagging another cluster's volume as ours.
    assert allowed("ec2:CreateTags", "volume") == [
        {"StringEquals": {"ec2:CreateAction": "CreateVolume"}}]


def test_volumes_attach_only_to_this_clusters_instances() -> None:
    for action in ("ec2:AttachVolume", "ec2:DetachVolume"):
        assert allowed(action, "instance") == [
            {"StringEquals": {f"ec2:ResourceTag/{CLUSTER_TAG}": CLUSTER}}], action
    assert allowed("ec2:TerminateInstances", "instance") == []
    assert not any("Snapshot" in a and not a.startswith("ec2:Describe")
                   for s in statements() for a in s["Action"])


def test_arns_name_the_regions_partition() -> None:
    assert [partition(r) for r in ("eu-west-1", "cn-north-1", "us-gov-west-1")] == [
        "aws", "aws-cn", "aws-us-gov"]
    arns = {s["Resource"] for s in ebs_csi_policy(CLUSTER, "us-gov-west-1", CLUSTER_TAG)[
        "Statement"] if s["Resource"] != "*"}
    assert arns == {"arn:aws-us-gov:ec2:us-gov-west-1:*:volume/*",
                    "arn:aws-us-gov:ec2:us-gov-west-1:*:instance/*"}
