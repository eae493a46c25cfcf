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

JTP_TESTENV_DIR="${JTP_TESTENV_DIR:-/tmp/jtp-testenv}"
# Ports well away from the usual defaults (2379, 6443, 10250, 10257, 10259) so a
# real cluster or another tool on this machine does not collide with us.
JTP_ETCD_PORT="${JTP_ETCD_PORT:-23790}"
JTP_ETCD_PEER_PORT="${JTP_ETCD_PEER_PORT:-23800}"
JTP_APISERVER_PORT="${JTP_APISERVER_PORT:-26443}"
JTP_KCM_PORT="${JTP_KCM_PORT:-26257}"
JTP_SCHEDULER_PORT="${JTP_SCHEDULER_PORT:-26259}"
JTP_NODE_PORT="${JTP_NODE_PORT:-26250}"
JTP_NODE_NAME="${JTP_NODE_NAME:-jtp-node}"
JTP_UNPULLABLE_PREFIX="${JTP_UNPULLABLE_PREFIX:-unpullable.invalid/}"

log() { printf '[testenv] %s\n' "$*" >&2; }
die() { printf '[testenv] error: %s\n' "$*" >&2; exit 1; }

need_go() {
  command -v go >/dev/null 2>&1 || die "Go is required to build the test control plane (etcd, Kubernetes, helm are built from source). Install Go >= 1.26 (https://go.dev/doc/install, or your distribution's golang package) and put it on PATH."
}

STATE="$JTP_TESTENV_DIR"
PKI="$STATE/pki"
LOCK_FILE="${JTP_TESTENV_DIR%/}.lock"
ADMIN_KUBECONFIG="$STATE/admin.kubeconfig"
# Start order; stopped in reverse. (The endpoint reconciler is off: it rejects loopback addresses.)
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler jtp-node)

# The pid of a component we started, if that process is still alive and is that program.
component_pid() {
  local name=$1 pidfile="$STATE/pids/$1.pid" pid
  [[ -f "$pidfile" ]] || return 1
  pid=$(cat "$pidfile")
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$name" || return 1
  echo "$pid"
}

stop_components() {
  local i name pid waited
  for (( i=${#COMPONENTS[@]}-1; i>=0; i-- )); do
    name=${COMPONENTS[$i]}
    if pid=$(component_pid "$name"); then
      log "stopping $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      waited=0
      while kill -0 "$pid" 2>/dev/null && (( waited < 100 )); do sleep 0.1; waited=$((waited + 1)); done
      if kill -0 "$pid" 2>/dev/null; then log "$name did not stop in 10s: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$STATE/pids/$name.pid"
  done
  # Mount points jtp-node had to create on the host (it removes them itself on SIGTERM).
  if [[ -f "$STATE/node/created-mountpoints" ]]; then
    sort -u "$STATE/node/created-mountpoints" | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2- \
      | while read -r path; do
          if [[ -d "$path" ]]; then rmdir "$path" 2>/dev/null || true
          elif [[ -f "$path" && ! -s "$path" ]]; then rm -f "$path"; fi
        done
    rm -f "$STATE/node/created-mountpoints"
  fi
}
