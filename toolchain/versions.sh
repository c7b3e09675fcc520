# shellcheck shell=bash disable=SC2034 # read by the scripts that source this file
# The versions the toolchain builds. Pulumi's CLI and plugins follow requirements.txt's pins;
# etcd, CoreDNS and pause follow what this kubeadm asks for (`kubeadm config images list`).
# KUBERNETES_VERSION is the newest served patch of the program's default minor
# (components/config.py DEFAULT_KUBERNETES_VERSION).
KUBERNETES_VERSION=v1.37.2
FLANNEL_VERSION=v0.27.4
KIND_VERSION=v0.33.0
