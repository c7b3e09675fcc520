#!/bin/sh
# Stand-in @PROGRAM@ from the package @PACKAGE@ @VERSION@ of the test apt repository that
# tests/real/kubeadm_repo builds: the Kubernetes community repository cannot be reached from the
# test machines, so this records how it was called and prints a version; it does nothing else.
printf '%s\n' "@PROGRAM@ $*" >>/var/log/kubeadm-repo-standins.log
case ${1:-} in
    version | --version) printf '%s\n' "v@UPSTREAM@ (stand-in @PROGRAM@)" ;;
    # `kubeadm config images list`: the pause image is what install-runtime.sh reads.
    config) [ "${2:-} ${3:-}" = "images list" ] &&
        printf '%s\n' registry.k8s.io/kube-apiserver:v@UPSTREAM@ registry.k8s.io/pause:3.10 ;;
esac
