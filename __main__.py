"""Wiring only: config -> target hosts -> kubeadm cluster -> workloads -> exports."""

import pulumi

from components.config import load_stack_config

config = load_stack_config()

pulumi.export("target", config.target)
pulumi.export("nodeNames", [config.master_name, *config.worker_names])
