#!/usr/bin/env bash
# Test harness: proves a node image boots the way the product runs it (components/targets/local.py), and
# optionally that kubeadm-init.sh makes a working one-node cluster on it. Removes what it made.
#
# Usage: toolchain/node-smoke.sh IMAGE [--init]
#   IMAGE   e.g. kubeadm-cluster/node:v1.37.2
#   --init  also run components/scripts/kubeadm-init.sh (kind profile, CNI=kind) in the node and
#           wait until the node is Ready with CoreDNS, kube-proxy and flannel running; join
#           SMOKE_WORKERS (default 0) workers with kubeadm-join.sh; run a locked-down nginx app.
# Environment: SMOKE_NETWORK (default kc-smoke), SMOKE_CIDR (172.31.250.0/24), SMOKE_PORT
# (16443), SMOKE_KEEP=1 keeps the container and network for a look afterwards.
set -euo pipefail
# shellcheck source=toolchain/lib.sh
source "$(dirname "$0")/lib.sh"

image=${1:?usage: node-smoke.sh IMAGE [--init]}
init=${2:-}
scripts=$(cd "$(dirname "$0")/../components/scripts" && pwd)
network=${SMOKE_NETWORK:-kc-smoke}
cidr=${SMOKE_CIDR:-172.31.250.0/24}
port=${SMOKE_PORT:-16443}
prefix=${cidr%.*/*}
gateway=$prefix.1
node_ip=$prefix.10
node=$network-master
workers=()
for ((i = 1; i <= ${SMOKE_WORKERS:-0}; i++)); do workers+=("$network-worker$i"); done
pattern='Reached target .*Multi-User System|detected cgroup v1'

cleanup() {
  if [[ ${SMOKE_KEEP:-0} == 1 ]]; then
    echo "kept: containers $node ${workers[*]}, network $network"
    return 0
  fi
  docker rm -f -v "$node" "${workers[@]}" >/dev/null 2>&1 || true
  docker network rm "$network" >/dev/null 2>&1 || true
}
trap cleanup EXIT

step() { printf '==> %s\n' "$*"; }
in_node() { docker exec "$node" "$@"; }

step "network $network ($cidr) and node container $node from $image"
docker network create --driver bridge --subnet "$cidr" --gateway "$gateway" "$network" >/dev/null
# start_node NAME IP [ARGS...]: exactly the product's docker.Container settings (local.py).
start_node() {
  local name=$1 ip=$2
  shift 2
  docker run -d --name "$name" --hostname "$name" --network "$network" --ip "$ip" \
    --privileged --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    --security-opt label=disable --tmpfs /tmp --tmpfs /run --volume /var \
    --volume /lib/modules:/lib/modules:ro --cgroupns=private --restart=on-failure:1 --init=false \
    --tty "$@" "$image" >/dev/null
}

# wait_ready NAME: what the product's systemd step waits for.
wait_ready() {
  local start=$SECONDS
  until docker logs "$1" 2>&1 | grep -Eq "$pattern"; do
    if [[ $(docker inspect -f '{{.State.Running}}' "$1") != true ]]; then
      docker logs --tail 30 "$1" >&2
      die "node container $1 stopped"
    fi
    [[ $((SECONDS - start)) -lt 60 ]] || die "no '$pattern' in docker logs $1 within 60s"
    sleep 1
  done
  step "$1: ready pattern seen after $((SECONDS - start))s"
}

start_node "$node" "$node_ip" -e KUBECONFIG=/etc/kubernetes/admin.conf -p "127.0.0.1:$port:6443"
wait_ready "$node"

state=starting
for _ in $(seq 30); do
  state=$(in_node systemctl is-system-running 2>/dev/null || true)
  [[ $state == starting ]] || break
  sleep 1
done
echo "systemctl is-system-running: $state"
if [[ $state != running ]]; then
  in_node systemctl --failed --no-legend >&2 || true
  die "systemd is $state"
fi
[[ $(in_node systemctl is-active containerd) == active ]] || die "containerd is not active"
echo "containerd: active"
step "images preloaded in containerd's k8s.io namespace"
in_node ctr --namespace k8s.io images ls -q | grep -v '^sha256:'
in_node test -r /kind/manifests/default-cni.yaml || die "no /kind/manifests/default-cni.yaml"
echo "/kind/version: $(in_node cat /kind/version)"

if [[ $init != --init ]]; then
  step "boot check passed"
  exit 0
fi

step "kubeadm-init.sh (NODE_PROFILE=kind, CNI=kind)"
start=$SECONDS
cat "$scripts/common.sh" "$scripts/kubeadm-init.sh" |
  docker exec -i -e NODE_NAME="$node" -e ADVERTISE_ADDRESS="$node_ip" -e POD_CIDR=10.244.0.0/16 \
    -e SERVICE_CIDR=10.96.0.0/16 -e KUBERNETES_VERSION="$(in_node cat /kind/version)" \
    -e NODE_PROFILE=kind -e CNI=kind -e CERT_SANS=127.0.0.1,localhost "$node" bash -s
step "kubeadm-init.sh finished after $((SECONDS - start))s"
# A single node: let it run workloads (what the product's scheduling step does).
in_node kubectl taint nodes --all node-role.kubernetes.io/control-plane- >/dev/null 2>&1 || true
in_node kubectl wait --for=condition=Ready "node/$node" --timeout=300s
in_node kubectl -n kube-system rollout status deployment/coredns --timeout=300s
in_node kubectl -n kube-system rollout status daemonset/kube-proxy --timeout=300s
in_node kubectl -n kube-flannel rollout status daemonset/kube-flannel-ds --timeout=300s
step "cluster ready after $((SECONDS - start))s"
for i in "${!workers[@]}"; do
  worker=${workers[i]}
  step "worker $worker joins (kubeadm-join.sh, NODE_PROFILE=kind)"
  start_node "$worker" "$prefix.$((11 + i))"
  wait_ready "$worker"
  join=$(in_node kubeadm token create --print-join-command --ttl 15m)
  cat "$scripts/common.sh" "$scripts/kubeadm-join.sh" |
    docker exec -i -e JOIN_COMMAND="$join" -e NODE_NAME="$worker" -e NODE_PROFILE=kind \
      "$worker" bash -s
  for _ in $(seq 60); do in_node kubectl get node "$worker" >/dev/null 2>&1 && break; sleep 1; done
  in_node kubectl wait --for=condition=Ready "node/$worker" --timeout=300s
done
in_node kubectl -n kube-flannel rollout status daemonset/kube-flannel-ds --timeout=300s
in_node kubectl get nodes -o wide
in_node kubectl get pods -A -o wide
step "API server from the host: https://127.0.0.1:$port"
kubectl=$KC_CACHE/kubernetes-$(in_node cat /kind/version)/bin/kubectl
kubeconfig=$(mktemp)
in_node cat /etc/kubernetes/admin.conf | sed "s#server: https://.*#server: https://127.0.0.1:$port#" >"$kubeconfig"
"$kubectl" --kubeconfig "$kubeconfig" get --raw=/readyz
echo
rm -f "$kubeconfig"

step "an app locked down as components/workloads.py does: kubeadm-cluster/nginx:1.0 on NodePort 30080"
docker exec -i "$node" kubectl apply -f - <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: smoke-nginx, namespace: default}
spec:
  replicas: 4
  selector: {matchLabels: {app: smoke-nginx}}
  template:
    metadata: {labels: {app: smoke-nginx}}
    spec:
      automountServiceAccountToken: false
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: nginx
          image: kubeadm-cluster/nginx:1.0
          imagePullPolicy: IfNotPresent
          ports: [{name: http, containerPort: 8080}]
          readinessProbe: {tcpSocket: {port: http}, periodSeconds: 2}
          securityContext:
            allowPrivilegeEscalation: false
            privileged: false
            readOnlyRootFilesystem: true
            runAsNonRoot: true
            capabilities: {drop: [ALL]}
            seccompProfile: {type: RuntimeDefault}
          volumeMounts: [{name: tmp, mountPath: /tmp}]
      volumes: [{name: tmp, emptyDir: {}}]
---
apiVersion: v1
kind: Service
metadata: {name: smoke-nginx, namespace: default}
spec:
  type: NodePort
  selector: {app: smoke-nginx}
  ports: [{name: http, port: 8080, targetPort: http, nodePort: 30080}]
YAML
in_node kubectl rollout status deployment/smoke-nginx --timeout=180s
in_node kubectl get pods -l app=smoke-nginx -o wide
for ((i = 0; i < 4; i++)); do
  in_node curl -fsS --max-time 5 "http://$node_ip:30080/" | grep -F 'kubeadm-cluster/nginx:1.0'
done
docker exec -i "$node" kubectl run smoke-client --image=kubeadm-cluster/nginx:1.0 --restart=Never --rm -i --quiet \
  --command -- bash -c 'getent hosts smoke-nginx.default.svc.cluster.local &&
    exec 3<>/dev/tcp/smoke-nginx.default.svc.cluster.local/8080 &&
    printf "GET / HTTP/1.0\r\n\r\n" >&3 && grep -F "kubeadm-cluster/nginx" <&3'
step "roll-out to kubeadm-cluster/nginx:1.1"
in_node kubectl set image deployment/smoke-nginx nginx=kubeadm-cluster/nginx:1.1 >/dev/null
in_node kubectl rollout status deployment/smoke-nginx --timeout=180s
in_node curl -fsS --max-time 5 "http://$node_ip:30080/" | grep -F 'kubeadm-cluster/nginx:1.1'
in_node kubectl get pods -A -o wide
step "init check passed"
