# shellcheck shell=bash
# Shared settings for the testenv scripts: pinned versions, cache and state dirs, ports.
TESTENV_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../versions.env
. "$TESTENV_SRC/versions.env"

JTP_CACHE_DIR="${JTP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/jtp}"
CACHE_ROOT="$JTP_CACHE_DIR/testenv"
ETCD_DIR="$CACHE_ROOT/etcd-$ETCD_VERSION"
KUBE_DIR="$CACHE_ROOT/kubernetes-$KUBERNETES_VERSION"
HELM_DIR="$CACHE_ROOT/helm-$HELM_VERSION"
CONTAINERD_DIR="$CACHE_ROOT/containerd-$CONTAINERD_VERSION"
RUNC_DIR="$CACHE_ROOT/runc-$RUNC_VERSION"
CRICTL_DIR="$CACHE_ROOT/cri-tools-$CRI_TOOLS_VERSION"
CNI_DIR="$CACHE_ROOT/cni-plugins-$CNI_PLUGINS_VERSION"
PAUSE_DIR="$CACHE_ROOT/pause-$PAUSE_VERSION"
IMAGES_DIR="$CACHE_ROOT/images"
# Image names that exist only on this machine (.invalid never resolves) and the operator's default.
SANDBOX_IMAGE="jtp-testenv.invalid/pause:$PAUSE_VERSION"
BUSYBOX_IMAGE="busybox:1.36"

JTP_TESTENV_DIR="${JTP_TESTENV_DIR:-/tmp/jtp-testenv}"
# The whole cluster lives in a network namespace of its own (see README.md, "Network"): its
# loopback (which also holds the `kubernetes` Service's address) and the pods' bridge holding
# the node's address. It has no link to any other namespace, so no packet can leave it.
JTP_NETNS="${JTP_NETNS:-$(basename "$JTP_TESTENV_DIR")}"
NETNS_PATH="/run/netns/$JTP_NETNS"
SERVICE_CIDR=10.0.0.0/24
APISERVER_IP=10.0.0.1      # the first address of SERVICE_CIDR: the `kubernetes` Service's ClusterIP
APISERVER_PORT=443         # that Service's port, so pods reach the API server without kube-proxy
DNS_IP=10.0.0.10           # the kubelet's clusterDNS; nothing answers there (no DNS server here)
POD_CIDR=10.0.2.0/24
NODE_IP=10.0.2.1           # on the pods' bridge: the node's InternalIP and the pods' gateway
BRIDGE=jtp-br0
# Ports inside that namespace, away from the usual defaults anyway.
JTP_ETCD_PORT="${JTP_ETCD_PORT:-23790}"
JTP_ETCD_PEER_PORT="${JTP_ETCD_PEER_PORT:-23800}"
JTP_KCM_PORT="${JTP_KCM_PORT:-26257}"
JTP_SCHEDULER_PORT="${JTP_SCHEDULER_PORT:-26259}"
JTP_NODE_PORT="${JTP_NODE_PORT:-26250}"
JTP_NODE_NAME="${JTP_NODE_NAME:-jtp-node}"

log() { printf '[testenv] %s\n' "$*" >&2; }
die() { printf '[testenv] error: %s\n' "$*" >&2; exit 1; }

need_go() {
  command -v go >/dev/null 2>&1 || die "Go is required to build the test control plane (etcd, Kubernetes, helm are built from source). Install Go >= 1.26 (https://go.dev/doc/install, or your distribution's golang package) and put it on PATH."
}

STATE="$JTP_TESTENV_DIR"
PKI="$STATE/pki"
LOCK_FILE="${JTP_TESTENV_DIR%/}.lock"
ADMIN_KUBECONFIG="$STATE/admin.kubeconfig"
CONTAINERD_SOCK="$STATE/containerd/containerd.sock"
# The kubelet's cgroup root: each testenv's pods live below their own /<name>/kubepods, so two
# testenvs on one machine never touch each other's cgroups.
CGROUP_ROOT="/$JTP_NETNS"
# Start order; stopped in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet)

# Runs a command inside the cluster's network namespace (only the network: mounts, PIDs and
# cgroups stay the machine's, which the kubelet and runc need).
in_netns() { nsenter --net="$NETNS_PATH" -- "$@"; }

# The pid of a component we started, if that process is still alive and is that program.
component_pid() {
  local name=$1 pidfile="$STATE/pids/$1.pid" pid
  [[ -f "$pidfile" ]] || return 1
  pid=$(cat "$pidfile")
  # The running program itself, not its command line: a reused pid is never taken for ours, the
  # setsid/nsenter steps before the component's exec do not count, and the link does not read
  # empty while a program execs (a command line can, for an instant).
  local exe
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [[ "${exe##*/}" == "$name" ]] || return 1
  echo "$pid"
}

stop_components() {
  local i name pid waited
  for (( i=${#COMPONENTS[@]}-1; i>=0; i-- )); do
    name=${COMPONENTS[$i]}
    # Before the runtime goes: every pod sandbox and its containers, with their networks.
    if [[ $name == containerd ]] && component_pid containerd >/dev/null && [[ -S "$CONTAINERD_SOCK" ]]; then
      in_netns "$CRICTL_DIR/bin/crictl" --runtime-endpoint "unix://$CONTAINERD_SOCK" --timeout 30s rmp --all --force \
        >/dev/null 2>&1 || log "crictl rmp failed; killing what is left"
    fi
    if pid=$(component_pid "$name"); then
      log "stopping $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      waited=0
      while kill -0 "$pid" 2>/dev/null && (( waited < 100 )); do sleep 0.1; waited=$((waited + 1)); done
      if kill -0 "$pid" 2>/dev/null; then log "$name did not stop in 10s: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$STATE/pids/$name.pid"
  done
  kill_leftovers
}

# What a crash can leave behind: shims of our containerd, processes in our pods' cgroups, the
# cgroups themselves, and mounts (pod volumes, container root filesystems) under the state dir.
kill_leftovers() {
  local pid dir pidfile
  # A component this version no longer starts, left by an older testenv in the same state dir.
  for pidfile in "$STATE"/pids/*.pid; do
    [[ -f "$pidfile" ]] || continue
    pid=$(component_pid "$(basename "$pidfile" .pid)") && kill -TERM "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
  for pid in $(pgrep -f -- "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK" || true); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  for dir in /sys/fs/cgroup/*"$CGROUP_ROOT"; do
    [[ -d "$dir" ]] || continue
    find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
  done
  sleep 0.2
  for dir in /sys/fs/cgroup/*"$CGROUP_ROOT"; do
    [[ -d "$dir" ]] && find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  if [[ -d "$STATE" ]]; then
    findmnt -rn -o TARGET | { grep -F -- "$STATE/" || true; } | sort -r | while read -r target; do
      umount -l "$target" 2>/dev/null || true
    done
  fi
}
