"""Targets: each builds the ClusterHosts (nodes, transports, endpoints) the kubeadm steps use."""
