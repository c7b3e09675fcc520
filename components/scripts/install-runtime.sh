#!/usr/bin/env bash
# Installs Docker and containerd and configures both for kubelet: containerd with its CRI plugin
# enabled, runc's SystemdCgroup = true and, when kubeadm is installed, the sandbox (pause) image
# that kubeadm uses for its version (not containerd's own default, which lags behind), and the
# registry config_path /etc/containerd/certs.d (registry-mirrors.sh writes mirrors there); dockerd
# with the systemd cgroup driver.
# Environment:
#   PACKAGE_SOURCE  docker (default): Docker's apt repository for this ubuntu/debian release,
#                   packages docker-ce docker-ce-cli containerd.io;
#                   distro: the distribution's docker.io and containerd.
#   LOGIN_USER      optional: added to the docker group when that user exists.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
if ! declare -F log_step >/dev/null; then . "$(dirname "${BASH_SOURCE[0]}")/common.sh"; fi
SCRIPT_NAME=install-runtime.sh

DOCKER_REPO_BASE=https://download.docker.com/linux
KEYRINGS=/etc/apt/keyrings
DOCKER_DAEMON_JSON=/etc/docker/daemon.json

install_from_docker_repo() {
    local packages=(docker-ce docker-ce-cli containerd.io) missing
    missing=$(missing_packages "${packages[@]}")
    if [[ -z $missing ]]; then
        log_skip "packages ${packages[*]} are installed"
        return 0
    fi
    [[ -r /etc/os-release ]] || die "/etc/os-release is missing: cannot tell the distribution"
    local id codename arch
    # shellcheck disable=SC1091
    id=$(. /etc/os-release && printf '%s' "${ID:-}")
    # shellcheck disable=SC1091
    codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
    case $id in
        ubuntu | debian) ;;
        *) die "PACKAGE_SOURCE=docker supports ubuntu and debian, not '${id}' (use PACKAGE_SOURCE=distro)" ;;
    esac
    [[ -n $codename ]] || die "/etc/os-release has no VERSION_CODENAME"

    local prereq
    prereq=$(missing_packages ca-certificates curl gpg)
    if [[ -n $prereq ]]; then
        apt_update
        # shellcheck disable=SC2086
        apt_install $prereq
    fi
    install -d -m 0755 "$KEYRINGS"
    if [[ ! -s ${KEYRINGS}/docker.asc ]]; then
        log_step "fetching Docker's apt signing key"
        download "${DOCKER_REPO_BASE}/${id}/gpg" "${KEYRINGS}/docker.asc"
        chmod 0644 "${KEYRINGS}/docker.asc"
    else
        log_skip "Docker's apt key is in ${KEYRINGS}/docker.asc"
    fi
    arch=$(dpkg --print-architecture)
    write_file_if_changed /etc/apt/sources.list.d/docker.list 0644 \
        <<<"deb [arch=${arch} signed-by=${KEYRINGS}/docker.asc] ${DOCKER_REPO_BASE}/${id} ${codename} stable"
    apt_update
    # shellcheck disable=SC2086
    apt_install $missing
}

install_from_distro() {
    local packages=(docker.io containerd) missing
    missing=$(missing_packages "${packages[@]}")
    if [[ -z $missing ]]; then
        log_skip "packages ${packages[*]} are installed"
        return 0
    fi
    apt_update
    # shellcheck disable=SC2086
    apt_install $missing
}

# Set SystemdCgroup = true in the runc options table, whichever config version this is
# (v2: plugins."io.containerd.grpc.v1.cri"...runc.options; v3: plugins.'io.containerd.cri.v1.runtime'...).
# containerd 2.x does not print the key by default, so it is inserted when absent.
set_systemd_cgroup() {
    awk '
        function close_section() {
            if (in_runc && !done) { print "            SystemdCgroup = true"; done = 1 }
            in_runc = 0
        }
        /^[[:space:]]*\[/ {
            close_section()
            if ($0 ~ /containerd\.runtimes\.runc\.options\][[:space:]]*$/) in_runc = 1
            print
            next
        }
        in_runc && /^[[:space:]]*SystemdCgroup[[:space:]]*=/ {
            sub(/=.*/, "= true")
            done = 1
            print
            next
        }
        { print }
        END { close_section(); if (!done) exit 3 }
    '
}

containerd_config() {
    local default
    default=$(containerd config default) || die "containerd config default failed"
    printf '%s\n' "$default" |
        sed -E 's/^([[:space:]]*)disabled_plugins[[:space:]]*=.*/\1disabled_plugins = []/' |
        set_registry_config_path /etc/containerd/certs.d |
        set_systemd_cgroup ||
        die "containerd's default config has no runc options table to set SystemdCgroup in"
}

# restart_when_written UNIT PATH WHAT: after write_file_if_changed PATH, restart UNIT if the
# file changed (WHAT says what was written), else report PATH as already configured.
restart_when_written() {
    local unit=$1 path=$2 what=$3
    if [[ $FILE_CHANGED == 1 ]]; then
        log_step "${what}; restarting ${unit}"
        systemctl restart "$unit" || die "${unit} failed to restart with the new ${path}"
    else
        log_skip "${path} is configured"
    fi
}

configure_containerd() {
    require_cmd containerd
    local content pause
    content=$(containerd_config)
    grep -q 'SystemdCgroup = true' <<<"$content" || die "could not set SystemdCgroup = true"
    pause=$(kubeadm_pause_image)
    if [[ -n $pause ]]; then
        content=$(set_sandbox_image "$pause" <<<"$content")
        grep -qF "$pause" <<<"$content" ||
            die "containerd's default config has no sandbox image setting to point at ${pause}"
        log_info "sandbox (pause) image: ${pause}, the one kubeadm $(kubeadm version -o short) uses"
    else
        log_info "kubeadm is not installed: containerd keeps its default sandbox (pause) image"
    fi
    write_file_if_changed "$CONTAINERD_CONFIG" 0644 <<<"$content"
    restart_when_written containerd "$CONTAINERD_CONFIG" \
        "containerd config written (CRI enabled, SystemdCgroup = true)"
}

configure_docker() {
    write_file_if_changed "$DOCKER_DAEMON_JSON" 0644 <<'EOF'
{
  "exec-opts": ["native.cgroupdriver=systemd"],
  "log-driver": "json-file",
  "log-opts": {"max-size": "100m"}
}
EOF
    restart_when_written docker "$DOCKER_DAEMON_JSON" \
        "docker daemon.json written (systemd cgroup driver)"
}

enable_services() {
    local unit
    for unit in containerd docker; do
        if systemctl is-enabled --quiet "$unit" && systemctl is-active --quiet "$unit"; then
            log_skip "${unit} is enabled and running"
            continue
        fi
        log_step "enabling and starting ${unit}"
        systemctl enable --now "$unit" >/dev/null 2>&1 || die "could not enable and start ${unit}"
    done
}

add_login_user() {
    local user=${LOGIN_USER:-}
    [[ -n $user ]] || return 0
    if ! id -u "$user" >/dev/null 2>&1; then
        log_info "user ${user} does not exist; not adding it to the docker group"
        return 0
    fi
    if id -nG "$user" | tr ' ' '\n' | grep -qx docker; then
        log_skip "${user} is in the docker group"
        return 0
    fi
    log_step "adding ${user} to the docker group"
    usermod -aG docker "$user"
}

cri_enabled() {
    ctr plugins ls 2>/dev/null |
        awk '$1 == "io.containerd.grpc.v1" && $2 == "cri" && $NF == "ok" { found = 1 } END { exit !found }'
}

verify() {
    retry "docker info" docker info >/dev/null 2>&1 ||
        die "docker is installed but 'docker info' fails (see: journalctl -u docker)"
    local driver
    driver=$(docker info --format '{{.CgroupDriver}}')
    [[ $driver == systemd ]] || die "docker uses the '${driver}' cgroup driver, expected systemd"
    retry "containerd CRI plugin" cri_enabled ||
        die "containerd's CRI plugin is not enabled (ctr plugins ls shows io.containerd.grpc.v1 cri not ok)"
    log_step "verified: docker answers (cgroup driver systemd), containerd CRI plugin ok"
}

main() {
    require_root
    local source=${PACKAGE_SOURCE:-docker}
    case $source in
        docker | distro) ;;
        *) die "PACKAGE_SOURCE must be 'docker' or 'distro', not '${source}'" ;;
    esac
    wait_for_cloud_init
    if [[ $source == docker ]]; then
        install_from_docker_repo
    else
        install_from_distro
    fi
    configure_containerd
    configure_docker
    enable_services
    add_login_user
    verify
    log_step "done"
}

main "$@" </dev/null
