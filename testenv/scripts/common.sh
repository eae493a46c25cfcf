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
