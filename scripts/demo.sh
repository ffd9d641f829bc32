#!/usr/bin/env bash
# Sets up this machine, builds minik8s and runs a demo on a three-node cluster made on this one
# machine (`minictl cluster up`: the control plane on the host, each node a network namespace
# with its own address running one `minik8s agent`: the CRI runtime, the nodelet and the service
# proxy). The demo is manifests/: a Deployment of busybox httpd behind a Service, its pods
# spread over the nodes and answering through the Service's ClusterIP from every node.
#
# It keeps running until Ctrl-C; then `minictl cluster down` removes everything it made
# (processes, containers, mounts, network namespaces, the bridge, nftables tables, state).
# NODES=N picks another node count.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
  echo "demo: run as root (containers need namespaces, mounts and cgroups)" >&2
  exit 1
fi

scripts/prereqs.sh
echo "==> building minik8s and minictl (the first build takes a few minutes)"
cargo build --quiet -p minik8s -p minictl -p minik8s-runtime --bins
PATH=$PWD/target/debug:$PATH

name=demo
nodes=${NODES:-3}

cleanup() {
  trap - EXIT
  trap "" INT TERM # a second Ctrl-C must not cut the cleanup short
  echo
  echo "==> minictl cluster down --name $name"
  minictl cluster down --name "$name" || true
}
trap cleanup EXIT INT TERM

# A demo cut short by a hard kill leaves its cluster behind: start from nothing.
minictl cluster down --name "$name" >/dev/null 2>&1 || true
echo "==> minictl cluster up --name $name --nodes $nodes"
minictl cluster up --name "$name" --nodes "$nodes"
export KUBECONFIG=/var/lib/minik8s/clusters/$name/apiserver/admin.kubeconfig

step() {
  echo
  echo "\$ $*"
  "$@"
}
step minictl get nodes -o wide
step minictl apply -f manifests/
step minictl scale deployment/web -n demo --replicas=$((2 * nodes))
step minictl rollout status deployment/web -n demo --timeout 180s
step minictl get pods -n demo -l app=web -o wide
step minictl get service web -n demo

ip=$(minictl get service web -n demo -o jsonpath='{.spec.clusterIP}')
for ((i = 1; i <= nodes; i++)); do
  echo
  echo "\$ ip netns exec mk8s-$name-node$i busybox wget -qO- http://$ip/   # the Service, from node$i"
  ip netns exec "mk8s-$name-node$i" timeout 5 busybox wget -qO- "http://$ip/" ||
    echo "(no answer from $ip on node$i)"
done

echo
echo "The cluster keeps running. In another shell:"
echo "  export KUBECONFIG=$KUBECONFIG"
echo "  minictl get all -n demo -o wide      # or kubectl, with the same KUBECONFIG"
echo "  minictl cluster kill-node node2 --name $name   # its pods come back on the other nodes"
echo "  minictl get pods -n demo -o wide -w"
echo "Press Ctrl-C to stop it and remove everything it made."
sleep infinity &
wait $!
