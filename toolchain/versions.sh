# shellcheck shell=bash disable=SC2034 # read by the scripts that source this file
# The versions the toolchain builds. Pulumi's CLI and plugins follow requirements.txt's pins;
# etcd, CoreDNS and pause follow what this kubeadm asks for (`kubeadm config images list`).
# KUBERNETES_VERSION is the newest served patch of the program's default minor
# (components/config.py DEFAULT_KUBERNETES_VERSION).
KUBERNETES_VERSION=v1.37.2
# The minor an upgrade test starts from (to KUBERNETES_VERSION): the newest patch of the previous
# minor the Go module proxy serves (v1.36.6 and later are refused), and the crictl its apt
# packages ship (cri-tools of that minor). Its etcd, CoreDNS and pause follow what its own
# kubeadm names (v3.6.8, v1.14.2, 3.10.2); kubernetes-cni stays CNI_PLUGINS_VERSION.
PREVIOUS_KUBERNETES_VERSION=v1.36.5
PREVIOUS_CRI_TOOLS_VERSION=v1.36.0
FLANNEL_VERSION=v0.27.4
KIND_VERSION=v0.33.0
# The node image's default StorageClass provisioner, as kind's images carry it
# (/kind/manifests/default-storage.yaml). Its helper pods run the Debian base image (sh, mkdir, rm).
LOCAL_PATH_PROVISIONER_VERSION=v0.0.30
# What the Kubernetes apt packages ship besides Kubernetes (toolchain/kubernetes-apt-repo.sh):
# crictl (package cri-tools, the release of the same minor) and the CNI plugins (package
# kubernetes-cni).
CRI_TOOLS_VERSION=v1.37.0
CNI_PLUGINS_VERSION=v1.7.1
# The flannel CNI plugin: flannel-io/cni-plugin's module is refused by the Go module proxy, so it
# is built from its ancestor, plugins/meta/flannel of github.com/containernetworking/plugins;
# v0.9.1 is the last release that still has that folder. Its image is tagged as flannel
# FLANNEL_VERSION's kube-flannel.yml names it (flannel-cni-plugin:TAG, see images.sh).
FLANNEL_CNI_SOURCE_VERSION=v0.9.1
FLANNEL_CNI_PLUGIN_TAG=v1.8.0-flannel1

# kubeadm_image_versions KUBEADM VERSION: set ETCD_VERSION (module version, like v3.7.0),
# ETCD_TAG, COREDNS_VERSION and PAUSE_TAG to what that kubeadm names for Kubernetes VERSION.
kubeadm_image_versions() {
  local images
  images=$("$1" config images list --kubernetes-version "$2" 2>/dev/null) || return 1
  ETCD_TAG=$(sed -n 's|^registry.k8s.io/etcd:||p' <<<"$images")
  COREDNS_VERSION=$(sed -n 's|^registry.k8s.io/coredns/coredns:||p' <<<"$images")
  PAUSE_TAG=$(sed -n 's|^registry.k8s.io/pause:||p' <<<"$images")
  ETCD_VERSION=v${ETCD_TAG%-*}
  [[ -n $ETCD_TAG && -n $COREDNS_VERSION && -n $PAUSE_TAG ]]
}
