# Shared settings and helpers of the local test cluster scripts.
# shellcheck shell=bash
set -euo pipefail

CLUSTER_DIR=${DEVBOX_CLUSTER_DIR:-$HOME/.devbox/cluster}
SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPTS_DIR/../.." && pwd)

NODE_NAME=devbox-node
# The node's address lives on `lo`: it is this machine's own, whatever its
# network, and no packet sent to it leaves the machine.
NODE_IP=10.199.0.1
POD_CIDR=10.244.0.0/16
NODE_POD_CIDR=10.244.0.0/24
POD_GATEWAY=10.244.0.1
SERVICE_CIDR=10.96.0.0/12
DNS_IP=10.96.0.10
CNI_BRIDGE=devbox-cni0
API_PORT=6443

PKI=$CLUSTER_DIR/pki
LOGS=$CLUSTER_DIR/logs
RUN=$CLUSTER_DIR/run
CONTAINERD_SOCK=$RUN/containerd.sock
KUBECONFIG_ADMIN=$CLUSTER_DIR/kubeconfig

step_started=0
step() {
  step_title=$1
  step_started=$(date +%s.%N)
  printf '• %s\n' "$step_title" >&2
}
done_step() {
  [ -t 2 ] && printf '\033[1A\033[2K' >&2
  printf '✓ %s (%ss)\n' "$step_title" "$(awk -v a="$step_started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')" >&2
}
fail() {
  printf '✗ %s\n  %s\n' "${step_title:-cluster}" "$*" >&2
  exit 1
}

# pid_alive NAME: the component started by these scripts is still running
# (and its pid was not reused by another program after a crash).
pid_alive() {
  local pidfile=$RUN/$1.pid pid program cmdline
  [ -f "$pidfile" ] || return 1
  read -r pid program <"$pidfile"
  cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ "$cmdline" == *"$program"* ]]
}

# start_daemon NAME CMD...: runs CMD detached, its output in logs/NAME.log.
start_daemon() {
  local name=$1
  shift
  mkdir -p "$LOGS" "$RUN"
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo "$! $(basename "$1")" >"$RUN/$name.pid"
}

stop_daemon() {
  local name=$1 pidfile=$RUN/$1.pid pid
  [ -f "$pidfile" ] || return 0
  pid=$(cut -d' ' -f1 "$pidfile")
  if pid_alive "$name"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# wait_for SECONDS NAME CMD...: polls CMD until it succeeds; on timeout names the log to read.
wait_for() {
  local seconds=$1 name=$2
  shift 2
  local deadline=$(($(date +%s) + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ -f "$RUN/$name.pid" ] && ! pid_alive "$name"; then
      fail "$name exited. Read $LOGS/$name.log:"$'\n'"$(tail -n 15 "$LOGS/$name.log" 2>/dev/null)"
    fi
    [ "$(date +%s)" -lt "$deadline" ] || fail "$name not ready after ${seconds}s. Read $LOGS/$name.log:"$'\n'"$(tail -n 15 "$LOGS/$name.log" 2>/dev/null)"
    sleep 0.5
  done
}

kube() { "$KUBE_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }
