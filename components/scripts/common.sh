#!/usr/bin/env bash
# Shared helpers for the node scripts. Sourced from a file, or sent first on stdin ahead of the
# script itself (see components/scripts/__init__.py), so it only defines functions and settings.
#
# Tunables (environment): RETRY_ATTEMPTS (5), RETRY_DELAY seconds (3, doubled per attempt,
# capped by RETRY_MAX_DELAY 30), APT_LOCK_TIMEOUT seconds (600), CLOUD_INIT_TIMEOUT seconds (900).
# All log output goes to stderr: stdout belongs to the script's result (join-token.sh).
set -euo pipefail
set -E

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C

log_step() { printf '==> %s: %s\n' "${SCRIPT_NAME:-node-script}" "$*" >&2; }
log_info() { printf '    %s\n' "$*" >&2; }
log_skip() { printf '    ok, already done: %s\n' "$*" >&2; }
log_warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s: %s\n' "${SCRIPT_NAME:-node-script}" "$*" >&2
    exit 1
}

# A failing command that nothing handled: one line naming the command (never its arguments,
# which may hold secrets) and the line. Subshells stay quiet; their parent reports.
on_unhandled_error() {
    local rc=$1 line=$2 cmd=$3
    if [[ ${BASH_SUBSHELL} -eq 0 ]]; then
        printf 'error: %s: command "%s" failed with exit code %s (line %s)\n' \
            "${SCRIPT_NAME:-node-script}" "${cmd%% *}" "$rc" "$line" >&2
    fi
    exit "$rc"
}
trap 'on_unhandled_error $? $LINENO "$BASH_COMMAND"' ERR

require_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (run it with sudo)"
}

# Files kubeadm writes, shared by the node scripts.
ADMIN_CONF=/etc/kubernetes/admin.conf
# shellcheck disable=SC2034 # used by install-kubeadm.sh and kubeadm-join.sh
KUBELET_CONF=/etc/kubernetes/kubelet.conf

kubectl_admin() { kubectl --kubeconfig "$ADMIN_CONF" "$@"; }

# shellcheck disable=SC2034 # used by kubeadm-init.sh and kubeadm-join.sh
DEFAULT_CRI_SOCKET=unix:///run/containerd/containerd.sock

# NODE_NAME must be a lowercase DNS name and NODE_PROFILE host or kind (kubeadm-init/join).
check_node_name_and_profile() {
    [[ $NODE_NAME =~ ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$ ]] ||
        die "NODE_NAME must be a lowercase DNS name, not '${NODE_NAME}'"
    case $NODE_PROFILE in host | kind) ;; *) die "NODE_PROFILE must be 'host' or 'kind', not '${NODE_PROFILE}'" ;; esac
}

# True on a host whose cgroup hierarchy is v1 (or hybrid): no unified cgroup2 root.
cgroup_v1_host() { [[ ! -f /sys/fs/cgroup/cgroup.controllers ]]; }

# True when the stack set allowCgroupV1 (ALLOW_CGROUP_V1=true) and this host needs it.
cgroup_v1_allowed_here() { [[ ${ALLOW_CGROUP_V1:-false} == true ]] && cgroup_v1_host; }

# kubelet 1.35 and newer refuses to start on cgroup v1 unless its failCgroupV1 is false, and
# kubeadm's SystemVerification preflight fails there (KEP-5573): say so before anything is installed
# (preflight.sh, when it knows the version) and again before the packages are (install-kubeadm.sh).
check_cgroups() {
    if ! cgroup_v1_host; then
        log_skip "cgroup v2 (unified hierarchy)"
        return 0
    fi
    local wanted=${KUBERNETES_VERSION:-}
    wanted=${wanted#v}
    if [[ -z $wanted ]]; then
        log_info "this host uses cgroup v1: checked against the Kubernetes version when kubeadm is installed"
        return 0
    fi
    if [[ $wanted =~ ^1\.([0-9]+) ]] && [[ ${BASH_REMATCH[1]} -lt 35 ]]; then
        log_warn "this host uses cgroup v1, which Kubernetes deprecates; kubelet ${wanted} still runs on it"
        return 0
    fi
    if [[ ${ALLOW_CGROUP_V1:-false} == true ]]; then
        log_warn "this host uses cgroup v1: kubelet runs with failCgroupV1: false and kubeadm skips its SystemVerification check (allowCgroupV1)"
        return 0
    fi
    die "this host uses cgroup v1, which kubelet ${wanted} refuses to run on: boot it with cgroup v2 (kernel parameter systemd.unified_cgroup_hierarchy=1, the default on current distributions), or set the stack's allowCgroupV1 to true"
}

require_control_plane() {
    [[ -f $ADMIN_CONF ]] || die "${ADMIN_CONF} is missing: this is not an initialised control-plane node"
}

# require_env NAME...: each must be set and non-empty.
require_env() {
    local name
    for name in "$@"; do
        [[ -n ${!name:-} ]] || die "required environment variable ${name} is not set"
    done
}

require_cmd() {
    local name
    for name in "$@"; do
        command -v "$name" >/dev/null 2>&1 || die "required command '${name}' not found on PATH"
    done
}

# retry DESCRIPTION CMD...: run CMD up to RETRY_ATTEMPTS times with exponential backoff.
# Returns CMD's last exit code after the final attempt (the caller dies with context).
retry() {
    local what=$1
    shift
    local attempts=${RETRY_ATTEMPTS:-5} delay=${RETRY_DELAY:-3} max_delay=${RETRY_MAX_DELAY:-30}
    local attempt=1 rc=0
    while true; do
        rc=0
        "$@" || rc=$?
        if [[ $rc -eq 0 ]]; then
            return 0
        fi
        if [[ $attempt -ge $attempts ]]; then
            log_warn "${what}: attempt ${attempt}/${attempts} failed (exit ${rc}); giving up"
            return "$rc"
        fi
        log_warn "${what}: attempt ${attempt}/${attempts} failed (exit ${rc}); retrying in ${delay}s"
        sleep "$delay"
        attempt=$((attempt + 1))
        delay=$((delay * 2))
        if [[ $delay -gt $max_delay ]]; then delay=$max_delay; fi
    done
}

# version_ge A B: true when version A >= version B (dotted numbers, leading v ignored).
version_ge() {
    local a=${1#v} b=${2#v}
    [[ $(printf '%s\n%s\n' "$a" "$b" | sort -V | head -n1) == "$b" ]]
}

# Milliseconds since the epoch (bash >= 5; $SECONDS counts whole seconds from an odd start).
now_ms() {
    local micros=${EPOCHREALTIME//[.,]/}
    printf '%s' "$((micros / 1000))"
}

# Wait (bounded) for cloud-init to finish when this host uses it, so apt is not raced.
wait_for_cloud_init() {
    if ! command -v cloud-init >/dev/null 2>&1; then
        return 0
    fi
    local timeout=${CLOUD_INIT_TIMEOUT:-900} rc=0
    log_step "waiting for cloud-init to finish (at most ${timeout}s)"
    timeout "$timeout" cloud-init status --wait >/dev/null 2>&1 || rc=$?
    case $rc in
        0) ;;
        124) die "cloud-init did not finish within ${timeout}s" ;;
        *) log_warn "cloud-init finished with status ${rc} (continuing)" ;;
    esac
}

apt_get() {
    apt-get -o "DPkg::Lock::Timeout=${APT_LOCK_TIMEOUT:-600}" -y -q "$@" >&2
}

# dpkg left half-done (a run killed mid-install): finish it, waiting for the lock like apt does.
repair_dpkg_if_interrupted() {
    if [[ -z $(find /var/lib/dpkg/updates -type f -print -quit 2>/dev/null) &&
        -z $(dpkg --audit 2>/dev/null || true) ]]; then
        return 0
    fi
    log_step "dpkg was interrupted earlier; finishing it (dpkg --configure -a)"
    local deadline=$((SECONDS + ${APT_LOCK_TIMEOUT:-600})) out
    while true; do
        if out=$(dpkg --force-confold --configure -a 2>&1); then
            return 0
        fi
        if [[ $out != *lock* ]]; then
            printf '%s\n' "$out" | tail -n 5 >&2
            die "dpkg --configure -a failed"
        fi
        if [[ $SECONDS -gt $deadline ]]; then
            die "dpkg lock still held by another process after ${APT_LOCK_TIMEOUT:-600}s"
        fi
        log_info "dpkg lock held by another process; waiting"
        sleep 3
    done
}

# One `apt-get update` that waits while another apt run such as apt-daily holds the package
# lists' lock (DPkg::Lock::Timeout covers only dpkg's locks), until APT_LISTS_DEADLINE.
apt_get_update() {
    local out
    while true; do
        if out=$(apt_get update --error-on=any 2>&1); then
            printf '%s\n' "$out" >&2
            return 0
        fi
        printf '%s\n' "$out" >&2
        if [[ $out != *"Could not get lock /var/lib/apt/lists/lock"* || $SECONDS -gt $APT_LISTS_DEADLINE ]]; then
            return 1
        fi
        log_info "apt's package lists are locked by another process; waiting"
        sleep 3
    done
}

# apt-get update with bounded retries for download failures; waiting for the lists lock counts
# against one APT_LOCK_TIMEOUT for the whole update, not one per attempt.
apt_update() {
    log_step "apt-get update"
    APT_LISTS_DEADLINE=$((SECONDS + ${APT_LOCK_TIMEOUT:-600}))
    retry "apt-get update" apt_get_update ||
        die "apt-get update failed after ${RETRY_ATTEMPTS:-5} attempts: a package source is unreachable or invalid (see the apt messages above)"
}

# apt_install PKG...: install with the lock wait and bounded retries; dies with a clear line.
apt_install() {
    repair_dpkg_if_interrupted
    log_step "apt-get install $*"
    retry "apt-get install $*" apt_get install --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" ||
        die "installing $* failed after ${RETRY_ATTEMPTS:-5} attempts (see the apt messages above)"
}

# pkg_installed PKG: true when PKG is unpacked and configured, whether held ("hold ok installed")
# or not ("install ok installed"); false when absent, half-installed or only its config is left.
pkg_installed() {
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true) == installed ]]
}

# missing_packages PKG...: prints those not installed (see pkg_installed), space-separated.
missing_packages() {
    local pkg missing=()
    for pkg in "$@"; do
        pkg_installed "$pkg" || missing+=("$pkg")
    done
    printf '%s' "${missing[*]:-}"
}

# write_file_if_changed PATH MODE < CONTENT: atomically replace PATH when CONTENT differs.
# Sets FILE_CHANGED=1 when it wrote the file, 0 when the content was already there.
# shellcheck disable=SC2034  # read by the scripts
FILE_CHANGED=0
write_file_if_changed() {
    local path=$1 mode=$2 dir tmp
    dir=$(dirname "$path")
    mkdir -p "$dir"
    tmp=$(mktemp "${dir}/.$(basename "$path").tmp.XXXXXX")
    cat >"$tmp"
    if [[ -f $path ]] && cmp -s "$tmp" "$path"; then
        rm -f "$tmp"
        chmod "$mode" "$path"
        FILE_CHANGED=0
        return 0
    fi
    chmod "$mode" "$tmp"
    mv -f "$tmp" "$path"
    # shellcheck disable=SC2034  # read by the scripts
    FILE_CHANGED=1
    log_info "wrote ${path}"
}

# download URL DEST: fetch with bounded retries into DEST (atomically).
download() {
    local url=$1 dest=$2
    retry "download ${url}" curl -fsSL --connect-timeout 15 --max-time 120 -o "${dest}.part" "$url" ||
        die "could not download ${url} after ${RETRY_ATTEMPTS:-5} attempts"
    mv -f "${dest}.part" "$dest"
}

# shellcheck disable=SC2034 # used by install-runtime.sh and packages.sh
CONTAINERD_CONFIG=/etc/containerd/config.toml

# The pause image the installed kubeadm uses for its version ("registry.k8s.io/pause:3.10.2"),
# or nothing when kubeadm is not installed yet (packages.sh points containerd at it once it is).
kubeadm_pause_image() {
    command -v kubeadm >/dev/null 2>&1 || return 0
    local version
    version=$(kubeadm version -o short 2>/dev/null) || return 0
    [[ $version =~ ^v1\.[0-9]+\.[0-9]+ ]] || return 0
    kubeadm config images list --kubernetes-version "${BASH_REMATCH[0]}" 2>/dev/null |
        grep -m1 -E '/pause:[^[:space:]]+$' || true
}

# Fill the empty registry config_path of containerd's default config (the CRI registry's and,
# in containerd 1.7+, the transfer service's) with DIR: hosts.toml files there configure
# mirrors (registry-mirrors.sh). Config on stdin and stdout.
set_registry_config_path() {
    sed -E "s#^([[:space:]]*)config_path[[:space:]]*=[[:space:]]*(\"\"|'')[[:space:]]*\$#\1config_path = \"$1\"#"
}

# Point the CRI plugin's sandbox image at IMAGE: `sandbox_image` in a config version 2 (containerd
# 1.x), `sandbox` under pinned_images in version 3 (containerd 2.x). Config on stdin and stdout.
set_sandbox_image() {
    sed -E -e "s#^([[:space:]]*)sandbox_image[[:space:]]*=.*#\1sandbox_image = \"$1\"#" \
        -e "s#^([[:space:]]*)sandbox[[:space:]]*=.*#\1sandbox = '$1'#"
}
