#!/usr/bin/env bash
# Starts (or resumes) the single-node local test cluster. Idempotent: with the
# cluster up it only checks every component and returns.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$SCRIPTS_DIR/pki.sh"
source "$SCRIPTS_DIR/components.sh"

started_all=$(date +%s)
[ "$(id -u)" = 0 ] || fail "The local cluster needs root (it runs a kubelet and containerd). Run it as root, or use your own cluster with --context."

step "Checking the machine"
preflight
done_step

step "Installing missing packages"
install_packages
done_step

step "Starting Docker"
ensure_docker
done_step

step "Building Kubernetes $KUBE_VERSION and CoreDNS (cached in $CACHE_DIR)"
KUBE_BIN=$(bash "$SCRIPTS_DIR/build-kube.sh" 2>>"$LOGS/build.log") || fail "Build failed. Read $LOGS/build.log"
export KUBE_BIN
done_step

step "Building the runtime, busybox and pause images"
ensure_images
done_step

step "Certificates and kubeconfigs"
make_pki
write_kubeconfigs
done_step

step "Node network (address, bridge, routes, isolation from Docker)"
setup_network
done_step

step "etcd"
start_etcd
done_step

step "API server"
start_apiserver
done_step

step "Controller manager and scheduler"
start_controllers
done_step

step "containerd for Kubernetes"
start_containerd
done_step

step "kubelet (waiting for the node to be Ready)"
start_kubelet
done_step

step "kube-proxy"
start_kube_proxy
done_step

step "Cluster DNS"
start_dns
done_step

mkdir -p "$CLUSTER_DIR/bin"
ln -sf "$KUBE_BIN/kubectl" "$CLUSTER_DIR/bin/kubectl"
printf 'Cluster ready in %ss. kubeconfig: %s\n' "$(($(date +%s) - started_all))" "$KUBECONFIG_ADMIN" >&2
printf '  export KUBECONFIG=%s PATH=%s:$PATH\n' "$KUBECONFIG_ADMIN" "$CLUSTER_DIR/bin" >&2
