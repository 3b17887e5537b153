# The steps of cluster:up, one function each.
# shellcheck shell=bash

KUBE_VERSION=${KUBE_VERSION:-v1.35.4}
CACHE_DIR=${DEVBOX_CACHE_DIR:-$HOME/.cache/devbox}

preflight() {
  local c
  for c in cpu memory pids cpuset; do
    [ -d "/sys/fs/cgroup/$c" ] || grep -qw "$c" /sys/fs/cgroup/cgroup.controllers 2>/dev/null ||
      fail "The cgroup controller '$c' is missing: the kubelet needs cpu, memory, pids and cpuset."
  done
  local free_kb
  mkdir -p "$CLUSTER_DIR" "$LOGS"
  free_kb=$(df -Pk "$CLUSTER_DIR" | awk 'NR==2 {print $4}')
  [ "$free_kb" -gt $((3 * 1024 * 1024)) ] || fail "Less than 3 GiB free under $CLUSTER_DIR; free some disk or set DEVBOX_CLUSTER_DIR."
  if ! pid_alive kube-apiserver; then
    local holder
    holder=$(ss -Hltnp "sport = :$API_PORT" 2>/dev/null | sed -n 's/.*users:((\("[^"]*"\).*/\1/p' | head -1)
    [ -z "$holder" ] || fail "Port $API_PORT is taken by $holder. Stop it, or use that cluster with --context."
  fi
}

# Chromium is not the cluster's: the browser tests drive it (test/support/browser.ts).
install_packages() {
  local missing=() pair
  for pair in dockerd:docker.io containerd:containerd runc:runc etcd:etcd-server etcdctl:etcd-client \
    iptables:iptables nft:nftables openssl:openssl conntrack:conntrack busybox:busybox-static ip:iproute2 \
    ss:iproute2 curl:curl gcc:gcc chromium:chromium; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
  done
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  [ ${#missing[@]} -eq 0 ] && return 0
  apt-get update -qq >>"$LOGS/apt.log" 2>&1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$LOGS/apt.log" 2>&1 ||
    fail "apt-get install ${missing[*]} failed. Read $LOGS/apt.log"
}

ensure_docker() {
  docker info >/dev/null 2>&1 && return 0
  # Docker turns the FORWARD policy to DROP when it enables forwarding itself.
  sysctl -qw net.ipv4.ip_forward=1
  if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    rm -f /var/run/docker.pid /var/run/docker.sock
  fi
  start_daemon dockerd dockerd
  wait_for 60 dockerd docker info
}

ensure_images() {
  if [ ! -f "$REPO_DIR/dist/test/cluster/images-main.js" ]; then
    (cd "$REPO_DIR" && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run build) >>"$LOGS/build.log" 2>&1 ||
      fail "Building devbox failed. Read $LOGS/build.log"
  fi
  node "$REPO_DIR/dist/test/cluster/images-main.js" >"$CLUSTER_DIR/images.json" 2>>"$LOGS/images.log" ||
    fail "Building the images failed. Read $LOGS/images.log"
  PAUSE_IMAGE=$(image_ref pause)
}

# image_ref KEY: the image named KEY in images.json, as containerd names it.
image_ref() {
  local ref
  ref=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).'"$1"')' "$CLUSTER_DIR/images.json")
  case "$ref" in */*) echo "$ref" ;; *) echo "docker.io/library/$ref" ;; esac
}

write_kubeconfigs() {
  write_kubeconfig "$KUBECONFIG_ADMIN" admin
  local n
  for n in controller-manager scheduler kube-proxy kubelet coredns; do
    write_kubeconfig "$PKI/$n.kubeconfig" "$n"
  done
}

ensure_rule() {
  local table=$1 chain=$2
  shift 2
  iptables -t "$table" -C "$chain" "$@" 2>/dev/null || iptables -t "$table" -A "$chain" "$@"
}
ensure_chain_jump() {
  local table=$1 from=$2 to=$3
  iptables -t "$table" -N "$to" 2>/dev/null || true
  iptables -t "$table" -C "$from" -j "$to" 2>/dev/null || iptables -t "$table" -I "$from" 1 -j "$to"
}

setup_network() {
  sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1
  [[ "$(ip -o addr show dev lo)" == *" $NODE_IP/"* ]] || ip addr add "$NODE_IP/32" dev lo
  ip link show "$CNI_BRIDGE" >/dev/null 2>&1 || ip link add "$CNI_BRIDGE" type bridge
  [[ "$(ip -o addr show dev "$CNI_BRIDGE")" == *" $POD_GATEWAY/"* ]] || ip addr add "$POD_GATEWAY/24" dev "$CNI_BRIDGE"
  ip link set "$CNI_BRIDGE" up
  # Keep the service and pod ranges on this machine instead of the default route.
  ip route replace "$SERVICE_CIDR" dev "$CNI_BRIDGE" src "$POD_GATEWAY"
  ip route replace unreachable "$POD_CIDR"
  local addr route
  for addr in 10.96.0.1 10.111.1.1 10.244.0.7 10.244.9.9; do
    route=$(ip route get "$addr" 2>&1 || true)
    case "$route" in *"dev $CNI_BRIDGE"* | *unreachable* | *"No route to host"*) ;;
      *) fail "$addr would leave this machine: $route" ;;
    esac
  done

  mkdir -p "$CLUSTER_DIR/cni/net.d" "$CLUSTER_DIR/cni/ipam"
  cat >"$CLUSTER_DIR/cni/net.d/10-devbox.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "devbox",
  "plugins": [
    {
      "type": "bridge", "bridge": "$CNI_BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$CLUSTER_DIR/cni/ipam",
        "ranges": [[{ "subnet": "$NODE_POD_CIDR", "gateway": "$POD_GATEWAY" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
JSON

  # Docker's containers stand for laptops: they reach the API server and
  # nothing else of the cluster. DOCKER-USER is Docker's place for such rules;
  # kube-proxy DNATs before FORWARD, so the original destination is matched too.
  iptables -N DOCKER-USER 2>/dev/null || true
  ensure_chain_jump filter DOCKER-USER DEVBOX-ISOLATION
  ensure_chain_jump filter FORWARD DEVBOX-ISOLATION
  ensure_chain_jump filter INPUT DEVBOX-INPUT
  local ifc
  for ifc in docker+ br-+; do
    ensure_rule filter DEVBOX-ISOLATION -i "$ifc" -d "$POD_CIDR" -j REJECT
    ensure_rule filter DEVBOX-ISOLATION -i "$ifc" -d "$SERVICE_CIDR" -j REJECT
    ensure_rule filter DEVBOX-ISOLATION -i "$ifc" -m conntrack --ctorigdst "$SERVICE_CIDR" -j REJECT
    ensure_rule filter DEVBOX-INPUT -i "$ifc" -d "$NODE_IP" -p tcp ! --dport "$API_PORT" -j REJECT --reject-with tcp-reset
    ensure_rule filter DEVBOX-INPUT -i "$ifc" -d "$NODE_IP" ! -p tcp -j REJECT
    ensure_rule filter DEVBOX-INPUT -i "$ifc" -p tcp -m multiport --dports 2379,2380,10249,10250,10256,10257,10259 -j REJECT --reject-with tcp-reset
    ensure_rule filter DEVBOX-INPUT -i "$ifc" -m conntrack --ctorigdst "$SERVICE_CIDR" -j REJECT
  done
  ensure_chain_jump filter FORWARD DEVBOX-CNI
  isolation_first
  ensure_rule filter DEVBOX-CNI -i "$CNI_BRIDGE" -j ACCEPT
  ensure_rule filter DEVBOX-CNI -o "$CNI_BRIDGE" -j ACCEPT
}

# isolation_first: the isolation rules come before kube-proxy's, which accept
# the packets they mark for masquerading (those from Docker's containers too).
isolation_first() {
  local chain jump
  for chain in FORWARD:DEVBOX-ISOLATION INPUT:DEVBOX-INPUT; do
    jump=${chain#*:}
    chain=${chain%:*}
    [ "$(iptables -S "$chain" 2 2>/dev/null)" = "-A $chain -j $jump" ] && continue
    while iptables -D "$chain" -j "$jump" 2>/dev/null; do :; done
    iptables -I "$chain" 1 -j "$jump"
  done
}

etcd_healthy() { ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:2379 --command-timeout=2s endpoint health; }
start_etcd() {
  pid_alive etcd && etcd_healthy >/dev/null 2>&1 && return 0
  stop_daemon etcd
  mkdir -p "$CLUSTER_DIR/etcd"
  chmod 700 "$CLUSTER_DIR/etcd"
  start_daemon etcd etcd --name devbox --data-dir "$CLUSTER_DIR/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster devbox=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 \
    --quota-backend-bytes 2147483648 --snapshot-count 10000
  wait_for 60 etcd etcd_healthy
}

https_ok() { curl -sfk --max-time 2 "$1" >/dev/null; }
start_apiserver() {
  pid_alive kube-apiserver && kube get --raw /readyz >/dev/null 2>&1 && return 0
  stop_daemon kube-apiserver
  start_daemon kube-apiserver "$KUBE_BIN/kube-apiserver" \
    --etcd-servers=http://127.0.0.1:2379 \
    --bind-address=0.0.0.0 --secure-port="$API_PORT" --advertise-address="$NODE_IP" \
    --client-ca-file="$PKI/ca.crt" --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$PKI/ca.crt" --kubelet-preferred-address-types=InternalIP \
    --service-cluster-ip-range="$SERVICE_CIDR" --authorization-mode=Node,RBAC --allow-privileged=true \
    --enable-admission-plugins=NodeRestriction \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --profiling=false --v=1
  wait_for 120 kube-apiserver kube get --raw /readyz
}

start_controllers() {
  if ! pid_alive kube-controller-manager || ! https_ok https://127.0.0.1:10257/healthz; then
    stop_daemon kube-controller-manager
    start_daemon kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
      --kubeconfig="$PKI/controller-manager.kubeconfig" \
      --authentication-kubeconfig="$PKI/controller-manager.kubeconfig" \
      --authorization-kubeconfig="$PKI/controller-manager.kubeconfig" \
      --bind-address=127.0.0.1 --leader-elect=false --use-service-account-credentials \
      --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
      --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
      --service-cluster-ip-range="$SERVICE_CIDR" --allocate-node-cidrs=false --profiling=false --v=1
  fi
  if ! pid_alive kube-scheduler || ! https_ok https://127.0.0.1:10259/healthz; then
    stop_daemon kube-scheduler
    start_daemon kube-scheduler "$KUBE_BIN/kube-scheduler" \
      --kubeconfig="$PKI/scheduler.kubeconfig" \
      --authentication-kubeconfig="$PKI/scheduler.kubeconfig" \
      --authorization-kubeconfig="$PKI/scheduler.kubeconfig" \
      --bind-address=127.0.0.1 --leader-elect=false --profiling=false --v=1
  fi
  wait_for 60 kube-controller-manager https_ok https://127.0.0.1:10257/healthz
  wait_for 60 kube-scheduler https_ok https://127.0.0.1:10259/healthz
}

# unmount_under DIR: what a killed kubelet or containerd left mounted.
unmount_under() {
  awk -v d="$1" '$2 ~ "^"d {print $2}' /proc/self/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

kill_orphan_shims() {
  pkill -9 -f "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK" 2>/dev/null || true
}

containerd_ok() { ctr --address "$CONTAINERD_SOCK" version; }
start_containerd() {
  if ! pid_alive containerd || ! containerd_ok >/dev/null 2>&1; then
    stop_daemon containerd
    kill_orphan_shims
    unmount_under "$CLUSTER_DIR/containerd"
    unmount_under "$RUN"
    rm -f "$CONTAINERD_SOCK" "$CONTAINERD_SOCK.ttrpc" "$CONTAINERD_SOCK.debug"
    mkdir -p "$CLUSTER_DIR/containerd" "$RUN"
    cat >"$CLUSTER_DIR/containerd/config.toml" <<TOML
version = 2
root = "$CLUSTER_DIR/containerd/root"
state = "$RUN/containerd-state"
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
# pprof for profiling the runtime's share of port-forward traffic: curl --unix-socket <sock>.debug
[debug]
  address = "$CONTAINERD_SOCK.debug"
[plugins."io.containerd.internal.v1.opt"]
  path = "$CLUSTER_DIR/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # This machine forbids lowering oom_score_adj below our own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$RUN/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CLUSTER_DIR/cni/net.d"
TOML
    start_daemon containerd containerd --config "$CLUSTER_DIR/containerd/config.toml"
    wait_for 60 containerd containerd_ok
  fi
  local key
  for key in pause busybox runtime; do
    bash "$SCRIPTS_DIR/load.sh" --if-missing "$(image_ref "$key")" >>"$LOGS/images.log" 2>&1 ||
      fail "Loading image $(image_ref "$key") failed. Read $LOGS/images.log"
  done
}

# node_ready [SINCE]: the node reports Ready, with a heartbeat newer than SINCE
# (epoch seconds): a restarted kubelet must not pass on its predecessor's status.
node_ready() {
  local since=${1:-0} status beat
  status=$(kube get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].lastHeartbeatTime}' 2>/dev/null) || return 1
  read -r status beat <<<"$status"
  [ "$status" = True ] && [ "$(date -d "$beat" +%s)" -ge "$since" ]
}
start_kubelet() {
  if pid_alive kubelet && curl -sf --max-time 2 http://127.0.0.1:10248/healthz >/dev/null && node_ready; then return 0; fi
  stop_daemon kubelet
  mkdir -p "$CLUSTER_DIR/kubelet" "$CLUSTER_DIR/pod-logs"
  printf 'nameserver %s\n' "$NODE_IP" >"$CLUSTER_DIR/kubelet/resolv.conf"
  cat >"$CLUSTER_DIR/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: true }
  x509: { clientCAFile: "$PKI/ca.crt" }
authorization: { mode: Webhook }
tlsCertFile: "$PKI/kubelet-serving.crt"
tlsPrivateKeyFile: "$PKI/kubelet-serving.key"
containerRuntimeEndpoint: "unix://$CONTAINERD_SOCK"
cgroupDriver: cgroupfs
failSwapOn: false
failCgroupV1: false
clusterDNS: ["$DNS_IP"]
clusterDomain: cluster.local
resolvConf: "$CLUSTER_DIR/kubelet/resolv.conf"
podLogsDir: "$CLUSTER_DIR/pod-logs"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: { "memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%" }
serializeImagePulls: false
maxPods: 110
YAML
  start_daemon kubelet "$KUBE_BIN/kubelet" --config="$CLUSTER_DIR/kubelet/config.yaml" \
    --kubeconfig="$PKI/kubelet.kubeconfig" --root-dir="$CLUSTER_DIR/kubelet" \
    --node-ip="$NODE_IP" --hostname-override="$NODE_NAME" --v=1
  wait_for 120 kubelet node_ready "$(($(date +%s) - 1))"
}

start_kube_proxy() {
  if pid_alive kube-proxy && curl -sf --max-time 2 http://127.0.0.1:10256/healthz >/dev/null; then
    isolation_first
    return 0
  fi
  stop_daemon kube-proxy
  cat >"$CLUSTER_DIR/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: "$POD_CIDR"
hostnameOverride: "$NODE_NAME"
clientConnection: { kubeconfig: "$PKI/kube-proxy.kubeconfig" }
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
conntrack: { maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s }
YAML
  start_daemon kube-proxy "$KUBE_BIN/kube-proxy" --config="$CLUSTER_DIR/kube-proxy.yaml" --v=1
  wait_for 60 kube-proxy curl -sf --max-time 2 http://127.0.0.1:10256/healthz
  # kube-proxy puts its jumps first when it starts; ours go back in front.
  wait_for 30 kube-proxy iptables -C FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
  isolation_first
}

dns_answers() {
  local out re='Name:[[:space:]]+kubernetes.default.svc.cluster.local[[:space:]]+Address: 10.96.0.1($|[^0-9])'
  out=$(busybox nslookup -type=a kubernetes.default.svc.cluster.local "$DNS_IP" 2>&1) || return 1
  [[ "$out" =~ $re ]]
}
start_dns() {
  kube apply -f "$SCRIPTS_DIR/manifests/cluster-dns.yaml" >/dev/null
  pid_alive coredns && dns_answers && return 0
  stop_daemon coredns
  mkdir -p "$CLUSTER_DIR/dns"
  [ -f "$CLUSTER_DIR/dns/devbox.test.hosts" ] || printf '%s legacy.devbox.test\n' "$NODE_IP" >"$CLUSTER_DIR/dns/devbox.test.hosts"
  # Cluster names are answered here; every other name is NXDOMAIN, never forwarded.
  cat >"$CLUSTER_DIR/dns/Corefile" <<COREFILE
cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {
  bind $NODE_IP
  errors
  kubernetes cluster.local in-addr.arpa ip6.arpa {
    kubeconfig $PKI/coredns.kubeconfig devbox
    pods insecure
    fallthrough in-addr.arpa ip6.arpa
    ttl 5
  }
  cache 5
}
devbox.test:53 {
  bind $NODE_IP
  hosts $CLUSTER_DIR/dns/devbox.test.hosts {
    ttl 5
    reload 2s
  }
}
.:53 {
  bind $NODE_IP
  template ANY ANY {
    rcode NXDOMAIN
  }
}
COREFILE
  start_daemon coredns "$KUBE_BIN/coredns" -conf "$CLUSTER_DIR/dns/Corefile"
  wait_for 60 coredns dns_answers
}
