#!/usr/bin/env bash
# Host checks and kernel settings kubeadm's preflight needs: 64-bit CPU, kernel >= 3.10, swap off
# (now and after reboot), overlay + br_netfilter modules, forwarding/bridge sysctls.
# Environment:
#   KUBERNETES_VERSION  optional: 1.31 or 1.31.4; from 1.35 on, a cgroup v1 host is refused (the
#                       install step gives none: install-kubeadm.sh checks again with the version)
#   ALLOW_CGROUP_V1     true: accept a cgroup v1 host anyway (the stack's allowCgroupV1)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
if ! declare -F log_step >/dev/null; then . "$(dirname "${BASH_SOURCE[0]}")/common.sh"; fi
SCRIPT_NAME=preflight.sh

MODULES=(overlay br_netfilter)
SYSCTLS=(
    net.ipv4.ip_forward=1
    net.bridge.bridge-nf-call-iptables=1
    net.bridge.bridge-nf-call-ip6tables=1
)
MODULES_FILE=/etc/modules-load.d/kubernetes.conf
SYSCTL_FILE=/etc/sysctl.d/99-kubernetes.conf

check_platform() {
    local arch kernel
    arch=$(uname -m)
    case $arch in
        x86_64 | aarch64 | arm64) ;;
        *) die "unsupported architecture '${arch}': Kubernetes packages exist for x86_64 and aarch64 only" ;;
    esac
    kernel=$(uname -r)
    local base=${kernel%%-*}
    if ! [[ $base =~ ^[0-9]+\.[0-9]+ ]]; then
        die "cannot read the kernel version from uname -r ('${kernel}')"
    fi
    version_ge "${BASH_REMATCH[0]}" 3.10 ||
        die "kernel ${kernel} is too old: kubeadm needs Linux 3.10 or newer"
    log_step "platform ${arch}, kernel ${kernel}: supported"
}

disable_swap() {
    if [[ -n $(tail -n +2 /proc/swaps 2>/dev/null) ]]; then
        log_step "turning swap off"
        swapoff -a || die "swapoff -a failed: swap is still on"
    else
        log_skip "swap is off"
    fi
    if [[ -f /etc/fstab ]] && grep -Eq '^[^#[:space:]]+[[:space:]]+[^[:space:]]+[[:space:]]+swap[[:space:]]' /etc/fstab; then
        local content
        content=$(sed -E 's/^([^#[:space:]]+[[:space:]]+[^[:space:]]+[[:space:]]+swap[[:space:]].*)$/# disabled for kubelet: \1/' /etc/fstab)
        write_file_if_changed /etc/fstab 0644 <<<"$content"
        log_step "commented the swap entries in /etc/fstab"
    else
        log_skip "no active swap entry in /etc/fstab"
    fi
}

load_modules() {
    write_file_if_changed "$MODULES_FILE" 0644 < <(printf '%s\n' "${MODULES[@]}")
    [[ $FILE_CHANGED == 1 ]] || log_skip "${MODULES_FILE} lists ${MODULES[*]}"
    local module
    for module in "${MODULES[@]}"; do
        if module_present "$module"; then
            log_skip "kernel module ${module} is loaded"
            continue
        fi
        log_step "loading kernel module ${module}"
        modprobe "$module" 2>/dev/null || module_present "$module" ||
            die "kernel module ${module} is not loaded and modprobe ${module} failed"
    done
}

# Loaded as a module, or built into the kernel (then only its effects are visible).
module_present() {
    [[ -d /sys/module/$1 ]] && return 0
    case $1 in
        overlay) grep -qw overlay /proc/filesystems ;;
        br_netfilter) [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] ;;
        *) return 1 ;;
    esac
}

apply_sysctls() {
    write_file_if_changed "$SYSCTL_FILE" 0644 < <(printf '%s\n' "${SYSCTLS[@]/=/ = }")
    [[ $FILE_CHANGED == 1 ]] || log_skip "${SYSCTL_FILE} holds the settings"
    local entry key want path have
    for entry in "${SYSCTLS[@]}"; do
        key=${entry%%=*}
        want=${entry#*=}
        path=/proc/sys/${key//.//}
        [[ -e $path ]] || die "sysctl ${key} does not exist (is br_netfilter loaded?)"
        have=$(<"$path")
        if [[ $have == "$want" ]]; then
            log_skip "sysctl ${key} = ${want}"
            continue
        fi
        log_step "setting sysctl ${key} = ${want}"
        if ! { printf '%s\n' "$want" >"$path"; } 2>/dev/null; then
            die "cannot set sysctl ${key} to ${want} (it is ${have}; /proc/sys may be read-only)"
        fi
    done
}

main() {
    require_root
    check_platform
    check_cgroups
    disable_swap
    load_modules
    apply_sysctls
    log_step "done"
}

main "$@" </dev/null
