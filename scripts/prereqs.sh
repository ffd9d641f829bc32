#!/usr/bin/env bash
# Installs what minik8s needs on a fresh Debian 12 machine. Idempotent: installs only
# what is missing, so it is cheap to run before every test run.
set -euo pipefail

packages=(
  protobuf-compiler            # protoc, for the CRI and etcd protobufs
  libprotobuf-dev              # google/protobuf/*.proto, which etcd-client's protos import
  busybox-static               # test and demo images are built from it
  runc crun                    # peers for the low-level runtime's tests and benchmark
  containerd                   # the reference CRI implementation
  containernetworking-plugins  # bridge, host-local, loopback, portmap
  nftables iproute2            # service proxy, netns nodes
  docker-registry              # a real OCI registry on 127.0.0.1 for pull tests
  etcd-server etcd-client      # the etcd storage backend and its benchmark peer
  skopeo umoci jq
  curl                         # raw HTTPS requests in the API server tests
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "prereqs: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  echo "prereqs: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts some of these as services; the tests start their own, on loopback.
  for svc in docker-registry etcd containerd; do
    systemctl disable --now "$svc" >/dev/null 2>&1 || true
  done
fi

# The Python `kubernetes` client, for the API server's client-compatibility test (which
# skips, saying so, when it is missing). A failed install must not stop the test run.
if ! python3 -c 'import kubernetes' >/dev/null 2>&1; then
  python3 -m pip install -q kubernetes >/dev/null 2>&1 \
    || echo "prereqs: pip install kubernetes failed; the Python client test will skip" >&2
fi
