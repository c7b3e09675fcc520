"""The kubeadm-cluster policy pack (`pulumi preview --policy-pack policy`).

This file makes `policy` a package: the tests and the program (components/config.py,
workloads.py share policy/references.py) import it, and `policy/__main__.py`, which Pulumi
runs, imports its rules as `policy.validators`.
"""
