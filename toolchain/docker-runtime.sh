#!/usr/bin/env bash
# Test harness only: makes the local Docker engine able to run the product's privileged kind-node
# containers on a machine whose capability bounding set lacks some capabilities.
#
# `docker run --privileged` asks runc for every capability the engine knows; on this machine
# CAP_SYS_RESOURCE is not in the bounding set, so runc fails with "unable to apply caps". The
# product keeps `privileged: true` (users' machines grant every capability). Here the engine gets
# an OCI runtime of its own, a wrapper around runc that removes from the container's config (and
# from `docker exec`'s process spec) every capability this machine cannot grant, and that runtime
# becomes the engine's default.
#
# Usage: toolchain/docker-runtime.sh [CHECK_IMAGE]
#   Installs Debian's docker.io and jq if missing, installs the wrapper, merges "runtimes" and
#   "default-runtime" into /etc/docker/daemon.json, then starts dockerd, or reloads it (SIGHUP)
#   when it runs without that default. Idempotent: a second run changes nothing.
#   With CHECK_IMAGE (a local image with /bin/true), also runs
#   `docker run --rm --privileged CHECK_IMAGE true` to prove it.
set -euo pipefail
# shellcheck source=toolchain/lib.sh
source "$(dirname "$0")/lib.sh"

RUNTIME_NAME=kubeadm-cluster-runc
WRAPPER=/usr/local/lib/kubeadm-cluster/runc-harness
DAEMON_JSON=/etc/docker/daemon.json
DOCKERD_LOG=$KC_CACHE/logs/dockerd.log
check_image=${1:-}

install_packages() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v jq >/dev/null 2>&1 || missing+=(jq)
  command -v runc >/dev/null 2>&1 || missing+=(runc)
  [[ ${#missing[@]} -eq 0 ]] && return 0
  run docker-runtime apt-get -o DPkg::Lock::Timeout=600 update -q
  run docker-runtime env DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=600 install -y -q "${missing[@]}"
}

# The wrapper itself. RUNC is filled in at install time (the runc Docker would use).
wrapper_text() {
  local runc_path=$1
  cat <<'EOF'
#!/bin/bash
# runc-harness: installed by toolchain/docker-runtime.sh (test harness only). Docker's default OCI
# runtime on this machine: before `runc create|run|exec` it removes from the bundle's config.json
# (or exec's --process file) every capability outside this machine's bounding set, which a
# privileged container would otherwise ask for ("unable to apply caps"), then execs runc.
set -euo pipefail
EOF
  printf 'RUNC=%q\n' "$runc_path"
  cat <<'EOF'

CAPS=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
  LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER
  SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE
  SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP
  MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF
  CHECKPOINT_RESTORE)

# {"CAP_X": true, ...} for each capability in this process's bounding set.
grantable_json() {
  local bnd i out="{"
  bnd=$(awk '/^CapBnd:/ { print $2 }' /proc/self/status)
  for i in "${!CAPS[@]}"; do
    if (( (16#$bnd >> i) & 1 )); then out+="\"CAP_${CAPS[i]}\":true,"; fi
  done
  printf '%s}' "${out%,}"
}

# strip FILE JQ_PATH: keep only grantable capabilities in every set under JQ_PATH.
strip() {
  local file=$1 path=$2 tmp
  [[ -f $file ]] || return 0
  tmp=$(mktemp "$file.XXXXXX")
  if jq -c --argjson ok "$(grantable_json)" "
      if ${path} then ${path} |= map_values(
        if type == \"array\" then map(select(\$ok[.] == true)) else . end)
      else . end" "$file" >"$tmp"; then
    chmod --reference="$file" "$tmp"
    mv -f "$tmp" "$file"
  else
    rm -f "$tmp"
    echo "runc-harness: could not edit $file; leaving it as it is" >&2
  fi
}

command=
bundle=
process=
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  arg=${args[i]}
  if [[ -z $command ]]; then
    case $arg in
      --root | --log | --log-format | --criu | --rootless) i=$((i + 1)) ;;
      -*) ;;
      *) command=$arg ;;
    esac
    continue
  fi
  case $arg in
    --bundle | -b) bundle=${args[i + 1]:-} ;;
    --bundle=*) bundle=${arg#--bundle=} ;;
    --process | -p) process=${args[i + 1]:-} ;;
    --process=*) process=${arg#--process=} ;;
  esac
done

case $command in
  create | run) strip "${bundle:-.}/config.json" .process.capabilities ;;
  exec) if [[ -n $process ]]; then strip "$process" .capabilities; fi ;;
esac
exec "$RUNC" "$@"
EOF
}

install_wrapper() {
  local runc_path tmp
  runc_path=$(command -v runc) || die "runc is not installed"
  mkdir -p "$(dirname "$WRAPPER")"
  tmp=$(mktemp "$WRAPPER.XXXXXX")
  wrapper_text "$runc_path" >"$tmp"
  chmod 0755 "$tmp"
  if [[ -f $WRAPPER ]] && cmp -s "$tmp" "$WRAPPER"; then
    rm -f "$tmp"
    return 0
  fi
  mv -f "$tmp" "$WRAPPER"
  echo "installed $WRAPPER"
}

# Merge the runtime into daemon.json, keeping every other setting. Sets config_changed=1 if written.
config_changed=0
configure_daemon() {
  local current='{}' wanted
  mkdir -p "$(dirname "$DAEMON_JSON")"
  if [[ -s $DAEMON_JSON ]]; then current=$(<"$DAEMON_JSON"); fi
  wanted=$(jq --arg name "$RUNTIME_NAME" --arg path "$WRAPPER" \
    '.runtimes[$name] = {path: $path} | ."default-runtime" = $name' <<<"$current") ||
    die "$DAEMON_JSON is not valid JSON"
  if [[ $(jq -S . <<<"$current") == "$(jq -S . <<<"$wanted")" ]]; then
    return 0
  fi
  printf '%s\n' "$wanted" >"$DAEMON_JSON.tmp"
  mv -f "$DAEMON_JSON.tmp" "$DAEMON_JSON"
  config_changed=1
  echo "wrote $DAEMON_JSON (default runtime $RUNTIME_NAME)"
}

engine_up() { docker info >/dev/null 2>&1; }

default_runtime() { docker info --format '{{.DefaultRuntime}}' 2>/dev/null; }

wait_for() {
  local what=$1 seconds=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    [[ $SECONDS -lt $deadline ]] || die "$what within ${seconds}s (see $DOCKERD_LOG)"
    sleep 1
  done
}

runtime_is_default() { [[ $(default_runtime) == "$RUNTIME_NAME" ]]; }

dockerd_pid() {
  local pid
  pid=$(cat /var/run/docker.pid 2>/dev/null) || return 1
  [[ -n $pid && -d /proc/$pid ]] || return 1
  printf '%s' "$pid"
}

start_or_reload() {
  local pid
  if engine_up; then
    if runtime_is_default && [[ $config_changed == 0 ]]; then
      return 0
    fi
    # "runtimes" and "default-runtime" are reloadable: no restart, running containers stay.
    pid=$(dockerd_pid) || die "the Docker engine answers but /var/run/docker.pid names no process"
    echo "reloading dockerd (pid $pid) for its default runtime $RUNTIME_NAME"
    kill -HUP "$pid"
    wait_for "dockerd did not take $RUNTIME_NAME as its default runtime" 30 runtime_is_default
    return 0
  fi
  echo "starting dockerd (log: $DOCKERD_LOG)"
  mkdir -p "$(dirname "$DOCKERD_LOG")"
  setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
  wait_for "dockerd did not answer" 60 engine_up
  wait_for "dockerd did not take $RUNTIME_NAME as its default runtime" 10 runtime_is_default
}

install_packages
install_wrapper
configure_daemon
start_or_reload
echo "docker default runtime: $(default_runtime)"
if [[ -n $check_image ]]; then
  run docker-runtime docker run --rm --privileged "$check_image" true
  echo "docker run --privileged works (checked with $check_image)"
fi
