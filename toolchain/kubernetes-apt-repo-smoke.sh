#!/usr/bin/env bash
# Checks the apt repository made by kubernetes-apt-repo.sh the way a node uses it: the product's
# own components/scripts/install-kubeadm.sh (fed on stdin after common.sh, as the program does)
# runs twice in a Debian machine that boots systemd, against the repository served over HTTP
# from a second container; then apt's signature check, the installed versions, the CNI plugins
# and the kubelet units are checked. Nothing is cached: it is a test.
#
# Usage: toolchain/kubernetes-apt-repo-smoke.sh KUBERNETES_VERSION   (e.g. v1.37.2)
# Environment: KC_MACHINE_IMAGE, the machine image (default: the newest kubeadm-real-machine:*
# image, which the real-container tests build; it boots systemd and has python3). The machine
# installs gpg, iptables and the like from Debian's mirror, so it needs that mirror.
# Output: one line per check; the scripts' output goes to $KC_CACHE/logs/apt-repo-smoke.log.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
# shellcheck source=toolchain/lib.sh
source "$here/lib.sh"

version=${1:?usage: kubernetes-apt-repo-smoke.sh KUBERNETES_VERSION}
[[ $version =~ ^v1\.([0-9]+)\.[0-9]+$ ]] || die "kubernetes version '$version': expected v1.MINOR.PATCH"
minor=1.${BASH_REMATCH[1]}
repo=$KC_CACHE/apt-repo-$version
[[ -f $repo/.done ]] || die "no apt repository for $version: run toolchain/kubernetes-apt-repo.sh $version"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer: run toolchain/docker-runtime.sh first"
image=${KC_MACHINE_IMAGE:-$(docker images --format '{{.Repository}}:{{.Tag}}' kubeadm-real-machine | head -n1)}
[[ -n $image ]] || die "no machine image: set KC_MACHINE_IMAGE (one that boots systemd and has python3)"

log=$KC_CACHE/logs/apt-repo-smoke.log
mkdir -p "$(dirname "$log")"
: >"$log"
name=kc-apt-smoke-$$
network=$name
cleanup() {
  docker rm -f -v "$name-machine" "$name-server" >/dev/null 2>&1 || true
  docker network rm "$network" >/dev/null 2>&1 || true
}
trap cleanup EXIT
fail() { die "apt repository smoke test: $* (log: $log)"; }
ok() { printf '  ok  %s\n' "$*"; }
in_machine() { docker exec "$name-machine" bash -c "$1" 2>>"$log"; }

docker network create "$network" >/dev/null || fail "could not create network $network"
docker run -d --name "$name-server" --network "$network" -v "$repo:/srv:ro" "$image" \
  python3 -m http.server 8080 --directory /srv >/dev/null || fail "could not start the server container"
server_ip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$network\").IPAddress}}" "$name-server")
url="http://$server_ip:8080/core:/stable:/v$minor/deb/"

# A machine as tests/real/machines.py starts one: systemd as PID 1, without --privileged.
caps=(AUDIT_CONTROL AUDIT_READ AUDIT_WRITE BLOCK_SUSPEND CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER
  FSETID IPC_LOCK IPC_OWNER KILL LEASE LINUX_IMMUTABLE MAC_ADMIN MAC_OVERRIDE MKNOD NET_ADMIN
  NET_BIND_SERVICE NET_BROADCAST NET_RAW SETFCAP SETGID SETPCAP SETUID SYS_ADMIN SYS_BOOT SYS_CHROOT
  SYS_MODULE SYS_NICE SYS_PACCT SYS_PTRACE SYS_RAWIO SYS_TIME SYS_TTY_CONFIG SYSLOG WAKE_ALARM)
args=(run -d --name "$name-machine" --hostname apt-smoke --network "$network"
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined
  --tmpfs /run --tmpfs /run/lock --tmpfs /tmp --device-cgroup-rule='a *:* rwm' --cgroupns=host
  -v /sys/fs/cgroup:/sys/fs/cgroup:rw)
for cap in "${caps[@]}"; do args+=(--cap-add "$cap"); done
docker "${args[@]}" "$image" /sbin/init >/dev/null || fail "could not start the machine ($image)"
state=
for _ in $(seq 90); do
  state=$(docker exec "$name-machine" systemctl is-system-running 2>/dev/null || true)
  [[ $state == running || $state == degraded ]] && break
  sleep 1
done
[[ $state == running || $state == degraded ]] || fail "systemd did not come up in the machine (state '$state')"
ok "machine $image up (systemd $state); repository served at $url"

# install_kubeadm: the product's script, as the program sends it (inputs, common.sh, script).
install_kubeadm() {
  {
    printf 'export KUBERNETES_APT_URL=%q\nexport KUBERNETES_VERSION=%q\n' "$url" "${version#v}"
    printf '%s\n\n%s\n' "$(<"$root/components/scripts/common.sh")" \
      "$(<"$root/components/scripts/install-kubeadm.sh")"
  } | docker exec -i "$name-machine" bash -s 2>&1 | tee -a "$log"
}

start=$SECONDS
first=$(install_kubeadm) || fail "install-kubeadm.sh failed: $(grep '^error:' <<<"$first" | tail -n1)"
grep -q "installed kubelet kubeadm kubectl ${version#v}-" <<<"$first" || fail "first run did not install the packages"
ok "install-kubeadm.sh installed the packages ($((SECONDS - start))s)"
start=$SECONDS
second=$(install_kubeadm) || fail "second install-kubeadm.sh run failed"
grep -q "ok, already done: kubelet kubeadm kubectl ${version#v}" <<<"$second" || fail "second run did not skip"
ok "second run skipped ($((SECONDS - start))s): $(grep 'already done' <<<"$second" | sed 's/^ *//')"

# apt checks the signature: the source has no [trusted=yes], the update fetched InRelease, and
# the same repository with another key in signed-by is refused.
sources=$(in_machine 'cat /etc/apt/sources.list.d/kubernetes.list')
[[ $sources == "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] $url /" ]] ||
  fail "unexpected sources line: $sources"
update=$(in_machine 'apt-get update 2>&1') || fail "apt-get update failed"
printf '%s\n' "$update" >>"$log"
# apt names a flat repository's files as "<base URL without its last slash>  InRelease".
grep -qF "${url%/}  InRelease" <<<"$update" || fail "apt-get update did not read InRelease"
if grep -qiE 'W: .*(sign|key)|NO_PUBKEY' <<<"$update"; then fail "apt warned about the signature: $update"; fi
refused=$(in_machine "echo 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $url /' \
  >/etc/apt/sources.list.d/kubernetes.list && apt-get update 2>&1" || true)
in_machine "printf '%s\n' '$sources' >/etc/apt/sources.list.d/kubernetes.list && apt-get update -q >/dev/null 2>&1" ||
  fail "could not restore the sources line"
printf '%s\n' "$refused" >>"$log"
grep -qE 'NO_PUBKEY|not signed' <<<"$refused" || fail "apt accepted the repository under a foreign key: $refused"
ok "apt verifies the signature: $sources (under another key: $(grep -oE 'NO_PUBKEY [0-9A-F]+' <<<"$refused" | head -n1))"

kubeadm_version=$(in_machine 'kubeadm version -o short') || fail "kubeadm version failed"
[[ $kubeadm_version == "$version" ]] || fail "kubeadm version -o short printed '$kubeadm_version', not $version"
ok "kubeadm version -o short: $kubeadm_version; kubectl: $(in_machine 'kubectl version --client -o json' | grep -o '"gitVersion": *"[^"]*"' | head -n1)"
ok "installed: $(in_machine "dpkg-query -W -f='\${Package}=\${Version} ' kubelet kubeadm kubectl kubernetes-cni cri-tools 2>/dev/null" || true)"
ok "held: $(in_machine 'apt-mark showhold' | tr '\n' ' ')"

# crictl is in the repository (cri-tools); kubeadm 1.32+ no longer depends on it, as in the
# community repository, so it is installed here by name.
if ! in_machine 'command -v crictl' >/dev/null; then
  in_machine 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q cri-tools >/dev/null' || fail "apt-get install cri-tools failed"
fi
ok "$(in_machine 'crictl --version')"

plugins=$(in_machine 'ls /opt/cni/bin') || fail "no /opt/cni/bin"
for plugin in bridge host-local portmap loopback; do
  grep -qx "$plugin" <<<"$plugins" || fail "/opt/cni/bin has no $plugin"
done
ok "/opt/cni/bin: $(tr '\n' ' ' <<<"$plugins")"

unit=$(in_machine 'systemctl cat kubelet') || fail "systemctl cat kubelet failed"
grep -q '^# /usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf' <<<"$unit" || fail "kubelet has no kubeadm drop-in"
# shellcheck disable=SC2016 # the literal text of the drop-in
grep -qF 'ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS' <<<"$unit" || fail "the drop-in sets no kubelet command line"
ok "systemctl cat kubelet shows the drop-in; kubelet is $(in_machine 'systemctl is-enabled kubelet')"
printf '%s\n' "$unit" | sed 's/^/      /'
