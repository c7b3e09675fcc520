"""The EBS CSI driver's chart values: the default StorageClass and the cluster tag."""

from __future__ import annotations

from pathlib import Path

import yaml

from components.config import DEFAULT_STORAGE_CLASS
from components.storage import DEFAULT_CLASS_ANNOTATION, EBS_STORAGE_CLASS, ebs_csi_values
from components.targets.aws_node_role import VOLUME_CLUSTER_TAG


def test_the_default_class_is_encrypted_gp3_bound_where_the_pod_runs() -> None:
    (storage_class,) = ebs_csi_values("kubeadm-aws", "eu-west-1")["storageClasses"]
    assert storage_class["name"] == EBS_STORAGE_CLASS
    assert storage_class["annotations"] == {DEFAULT_CLASS_ANNOTATION: "true"}
    assert storage_class["parameters"] == {"type": "gp3", "encrypted": "true"}
    assert storage_class["volumeBindingMode"] == "WaitForFirstConsumer"


def test_volumes_carry_the_tag_the_node_policy_tests() -> None:
    # k8sTagClusterId makes the driver tag every volume ebs.csi.aws.com/cluster-name=<id>.
    assert VOLUME_CLUSTER_TAG == "ebs.csi.aws.com/cluster-name"
    controller = ebs_csi_values("kubeadm-aws", "eu-west-1")["controller"]
    assert controller == {"k8sTagClusterId": "kubeadm-aws", "region": "eu-west-1"}


def test_the_node_images_class_is_the_one_config_checks_local_claims_against() -> None:
    manifest = (Path(__file__).resolve().parents[1] / "toolchain" / "node-image" / "files" /
                "kind" / "manifests" / "default-storage.yaml.in").read_text().replace("@", "")
    (storage_class,) = [doc for doc in yaml.safe_load_all(manifest)
                        if doc and doc["kind"] == "StorageClass"]
    assert storage_class["metadata"]["name"] == DEFAULT_STORAGE_CLASS["local"]
    assert storage_class["metadata"]["annotations"] == {DEFAULT_CLASS_ANNOTATION: "true"}
