#!/usr/bin/env bash
# Builds the pinned test control plane from the Go module proxy into a cache outside
# the repo, one directory per component and version:
#   $JTP_CACHE_DIR/testenv/etcd-<v>/bin/etcd
#   $JTP_CACHE_DIR/testenv/kubernetes-<v>/bin/{kube-apiserver,kube-controller-manager,kube-scheduler,kubectl}
#   $JTP_CACHE_DIR/testenv/helm-<v>/bin/helm
# A component whose stamp matches is not rebuilt, so a warm run builds nothing.
# Usage: build.sh [etcd|kubernetes|helm]...   (default: all)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# Bump when the way a component is built changes, to invalidate old stamps.
RECIPE=1
export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod"
GO_LDFLAGS_BASE="-s -w"

stamp_ok() { # dir, expected stamp, binaries...
  local dir=$1 stamp=$2; shift 2
  [[ -f "$dir/.stamp" && "$(cat "$dir/.stamp")" == "$stamp" ]] || return 1
  local b; for b in "$@"; do [[ -x "$dir/bin/$b" ]] || return 1; done
}

# Runs `go build` for the tools of the generated module in $dir/src into $dir/bin,
# atomically, and writes the stamp last.
build_tools() { # dir, stamp, ldflags, tags
  local dir=$1 stamp=$2 ldflags=$3
  ( cd "$dir/src" && go mod tidy )
  rm -rf "$dir/bin.tmp" && mkdir -p "$dir/bin.tmp"
  ( cd "$dir/src" && go build -trimpath -tags "${4:-}" -ldflags "$ldflags" -o "$dir/bin.tmp/" tool )
  rm -rf "$dir/bin" && mv "$dir/bin.tmp" "$dir/bin"
  printf '%s' "$stamp" > "$dir/.stamp"
}

build_etcd() {
  local stamp="etcd $ETCD_VERSION recipe $RECIPE"
  if stamp_ok "$ETCD_DIR" "$stamp" etcd; then log "etcd $ETCD_VERSION: up to date ($ETCD_DIR/bin)"; return; fi
  log "building etcd $ETCD_VERSION (go.etcd.io/etcd/server/v3/etcdmain) into $ETCD_DIR/bin"
  need_go
  rm -rf "$ETCD_DIR/src" && mkdir -p "$ETCD_DIR/src/cmd/etcd"
  cat > "$ETCD_DIR/src/go.mod" <<GOMOD
module jtp.local/testenv/etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION

tool jtp.local/testenv/etcd/cmd/etcd
GOMOD
  cat > "$ETCD_DIR/src/cmd/etcd/main.go" <<'GO'
// Command etcd is etcd's server main, built from the pinned server module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  build_tools "$ETCD_DIR" "$stamp" "$GO_LDFLAGS_BASE"
}

build_kubernetes() {
  local stamp="kubernetes $KUBERNETES_VERSION recipe $RECIPE"
  local bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
  if stamp_ok "$KUBE_DIR" "$stamp" "${bins[@]}"; then log "kubernetes $KUBERNETES_VERSION: up to date ($KUBE_DIR/bin)"; return; fi
  log "building ${bins[*]} $KUBERNETES_VERSION (k8s.io/kubernetes) into $KUBE_DIR/bin"
  need_go
  # k8s.io/kubernetes points each staging module (k8s.io/api, ...) at ./staging/src/...;
  # as a dependency those must be replaced by the published v0.<minor>.<patch> tags.
  # The list comes from the module's own go.mod, so it follows the pinned version.
  local upstream_mod staging_version major minor
  command -v jq >/dev/null || die "jq is required to read k8s.io/kubernetes' go.mod (apt-get install jq)"
  upstream_mod=$(cd /tmp && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | jq -r .GoMod)
  [[ -f "$upstream_mod" ]] || die "could not download k8s.io/kubernetes@$KUBERNETES_VERSION"
  staging_version="v0.${KUBERNETES_VERSION#v1.}"
  major=1; minor=$(cut -d. -f2 <<<"${KUBERNETES_VERSION#v}")
  rm -rf "$KUBE_DIR/src" && mkdir -p "$KUBE_DIR/src"
  {
    echo "module jtp.local/testenv/kubernetes"
    echo
    grep -E '^(go|godebug) ' "$upstream_mod"
    echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    echo
    echo "replace ("
    go mod edit -json "$upstream_mod" \
      | jq -r --arg v "$staging_version" \
        '.Replace[] | select(.New.Path | startswith("./staging/")) | "\t\(.Old.Path) => \(.Old.Path) \($v)"'
    echo ")"
    echo
    echo "tool ("
    printf '\tk8s.io/kubernetes/cmd/%s\n' "${bins[@]}"
    echo ")"
  } > "$KUBE_DIR/src/go.mod"
  log "generated $KUBE_DIR/src/go.mod with $(grep -c '=>' "$KUBE_DIR/src/go.mod") staging replaces ($staging_version)"
  local ld="$GO_LDFLAGS_BASE" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  # The tags Kubernetes' own build uses (hack/lib/golang.sh).
  build_tools "$KUBE_DIR" "$stamp" "$ld" "selinux,notest,grpcnotrace"
}

build_helm() {
  local stamp="helm $HELM_VERSION recipe $RECIPE"
  if stamp_ok "$HELM_DIR" "$stamp" helm; then log "helm $HELM_VERSION: up to date ($HELM_DIR/bin)"; return; fi
  local module="helm.sh/helm/v${HELM_VERSION:1:1}"
  log "building helm $HELM_VERSION ($module/cmd/helm) into $HELM_DIR/bin"
  need_go
  rm -rf "$HELM_DIR/src" && mkdir -p "$HELM_DIR/src"
  cat > "$HELM_DIR/src/go.mod" <<GOMOD
module jtp.local/testenv/helm

go 1.26.0

require $module $HELM_VERSION

tool $module/cmd/helm
GOMOD
  build_tools "$HELM_DIR" "$stamp" "$GO_LDFLAGS_BASE -X $module/internal/version.version=$HELM_VERSION"
}

main() {
  mkdir -p "$CACHE_ROOT"
  # One build at a time per cache, even from concurrent test binaries or CI steps.
  exec 9>"$CACHE_ROOT/.build.lock"
  flock 9
  local targets=("$@") t start
  [[ ${#targets[@]} -gt 0 ]] || targets=(etcd kubernetes helm)
  for t in "${targets[@]}"; do
    start=$SECONDS
    case "$t" in
      etcd) build_etcd ;;
      kubernetes) build_kubernetes ;;
      helm) build_helm ;;
      *) die "unknown component '$t' (etcd, kubernetes, helm)" ;;
    esac
    (( SECONDS - start < 2 )) || log "$t: done in $((SECONDS - start))s"
  done
}
main "$@"
