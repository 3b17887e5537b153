#!/usr/bin/env bash
# Stops everything cluster:up started and undoes its network changes. Keeps the
# build cache and the cluster's state (certificates, etcd data) for a fast
# restart; `--purge` deletes the state too. Docker is left running.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

purge=false
[ "${1:-}" = --purge ] && purge=true

step "Stopping the cluster"
# The node and control plane stop together (each waits for its own exit), then the runtime and etcd.
for name in coredns kube-proxy kubelet kube-scheduler kube-controller-manager kube-apiserver; do
  stop_daemon "$name" &
done
wait
# Pods die with their shims; then containerd itself.
pkill -9 -f "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK" 2>/dev/null || true
stop_daemon containerd
stop_daemon etcd
awk -v d="$CLUSTER_DIR" '$2 ~ "^"d {print $2}' /proc/self/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
done_step

step "Removing network changes"
KUBE_BIN=$(ls -d "${DEVBOX_CACHE_DIR:-$HOME/.cache/devbox}"/kube-*/bin 2>/dev/null | head -1)
[ -x "$KUBE_BIN/kube-proxy" ] && "$KUBE_BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
for rule in "DOCKER-USER -j DEVBOX-ISOLATION" "FORWARD -j DEVBOX-ISOLATION" "FORWARD -j DEVBOX-CNI" "INPUT -j DEVBOX-INPUT"; do
  # shellcheck disable=SC2086
  while iptables -D $rule 2>/dev/null; do :; done
done
for chain in DEVBOX-ISOLATION DEVBOX-CNI DEVBOX-INPUT; do
  iptables -F "$chain" 2>/dev/null || true
  iptables -X "$chain" 2>/dev/null || true
done
# The bridge plugin's masquerade chains (CNI-*) belong to pods that are gone.
iptables-save -t nat | sed -n 's/^-A POSTROUTING .*-j \(CNI-[0-9a-f]*\).*/\1/p' | sort -u | while read -r c; do
  iptables -t nat -S POSTROUTING | grep -- "-j $c" | sed 's/^-A/-D/' | while read -r r; do
    # shellcheck disable=SC2086
    iptables -t nat $r 2>/dev/null || true
  done
  iptables -t nat -F "$c" 2>/dev/null || true
  iptables -t nat -X "$c" 2>/dev/null || true
done
ip route del "$SERVICE_CIDR" 2>/dev/null || true
ip route del unreachable "$POD_CIDR" 2>/dev/null || true
ip link del "$CNI_BRIDGE" 2>/dev/null || true
ip addr del "$NODE_IP/32" dev lo 2>/dev/null || true
for ns in /var/run/netns/cni-*; do
  [ -e "$ns" ] || continue
  umount "$ns" 2>/dev/null || true
  rm -f "$ns"
done
done_step

if $purge; then
  step "Deleting the cluster state in $CLUSTER_DIR"
  rm -rf "$CLUSTER_DIR"
  done_step
fi
