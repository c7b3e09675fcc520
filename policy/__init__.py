"""The kubeadm-cluster policy pack (`pulumi preview --policy-pack policy`).

This file only makes `policy.validators` importable from the tests; Pulumi runs the pack
from `policy/__main__.py` and never imports this package.
"""
