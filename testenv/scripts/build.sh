#!/usr/bin/env bash
# Builds the pinned test control plane from the Go module proxy into a cache outside
# the repo, one directory per component and version:
#   $JTP_CACHE_DIR/testenv/etcd-<v>/bin/etcd
#   $JTP_CACHE_DIR/testenv/kubernetes-<v>/bin/{kube-apiserver,kube-controller-manager,kube-scheduler,kubectl,kubelet}
#   $JTP_CACHE_DIR/testenv/helm-<v>/bin/helm
#   $JTP_CACHE_DIR/testenv/containerd-<v>/bin/{containerd,ctr,containerd-shim-runc-v2}
#   $JTP_CACHE_DIR/testenv/runc-<v>/bin/runc
#   $JTP_CACHE_DIR/testenv/cri-tools-<v>/bin/crictl   (down uses it to remove every pod sandbox)
#   $JTP_CACHE_DIR/testenv/cni-plugins-<v>/bin/{bridge,host-local,loopback}
#   $JTP_CACHE_DIR/testenv/pause-<v>/bin/pause   (the pod sandbox's process, a few lines of Go below)
# A component whose stamp matches is not rebuilt, so a warm run builds nothing.
# Usage: build.sh [etcd|kubernetes|helm|containerd|runc|crictl|cni|pause]...   (default: all)
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
  local dir=$1 stamp=$2 ldflags=$3 tags=${4:-}
  ( cd "$dir/src" && go mod tidy )
  rm -rf "$dir/bin.tmp" && mkdir -p "$dir/bin.tmp"
  ( cd "$dir/src" && go build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$dir/bin.tmp/" tool )
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
  local bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet)
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

# A generated module whose go.mod requires one module at one version and names its commands
# as tools. dir, module name, required module@version, tool packages...
tool_module() {
  local dir=$1 name=$2 require=$3; shift 3
  rm -rf "$dir/src" && mkdir -p "$dir/src"
  {
    printf 'module jtp.local/testenv/%s\n\ngo 1.26.0\n\nrequire %s %s\n\ntool (\n' "$name" "${require%@*}" "${require#*@}"
    printf '\t%s\n' "$@"
    printf ')\n'
  } > "$dir/src/go.mod"
}

build_containerd() {
  local stamp="containerd $CONTAINERD_VERSION recipe $RECIPE"
  local bins=(containerd ctr containerd-shim-runc-v2)
  if stamp_ok "$CONTAINERD_DIR" "$stamp" "${bins[@]}"; then log "containerd $CONTAINERD_VERSION: up to date ($CONTAINERD_DIR/bin)"; return; fi
  local module="github.com/containerd/containerd/v${CONTAINERD_VERSION:1:1}"
  log "building ${bins[*]} $CONTAINERD_VERSION ($module) into $CONTAINERD_DIR/bin"
  need_go
  tool_module "$CONTAINERD_DIR" containerd "$module@$CONTAINERD_VERSION" "${bins[@]/#/$module/cmd/}"
  # Snapshotters this node does not use (it uses overlayfs) are left out, as containerd's
  # own static release build does.
  build_tools "$CONTAINERD_DIR" "$stamp" \
    "$GO_LDFLAGS_BASE -X $module/version.Version=$CONTAINERD_VERSION -X $module/version.Revision=jtp-testenv" \
    "no_btrfs,no_devmapper,no_zfs"
}

build_runc() {
  local stamp="runc $RUNC_VERSION recipe $RECIPE"
  if stamp_ok "$RUNC_DIR" "$stamp" runc; then log "runc $RUNC_VERSION: up to date ($RUNC_DIR/bin)"; return; fi
  log "building runc $RUNC_VERSION (github.com/opencontainers/runc, cgo + libseccomp) into $RUNC_DIR/bin"
  need_go
  command -v gcc >/dev/null || die "runc needs a C compiler for its nsenter part (apt-get install gcc)"
  [[ -f /usr/include/seccomp.h ]] || die "runc needs libseccomp's headers (apt-get install libseccomp-dev)"
  tool_module "$RUNC_DIR" runc "github.com/opencontainers/runc@$RUNC_VERSION" github.com/opencontainers/runc
  # runc's nsenter (the C code that joins namespaces before the Go runtime starts) needs cgo.
  CGO_ENABLED=1 build_tools "$RUNC_DIR" "$stamp" "$GO_LDFLAGS_BASE -X main.version=${RUNC_VERSION#v}" seccomp
}

build_crictl() {
  local stamp="cri-tools $CRI_TOOLS_VERSION recipe $RECIPE"
  if stamp_ok "$CRICTL_DIR" "$stamp" crictl; then log "crictl $CRI_TOOLS_VERSION: up to date ($CRICTL_DIR/bin)"; return; fi
  log "building crictl $CRI_TOOLS_VERSION (sigs.k8s.io/cri-tools) into $CRICTL_DIR/bin"
  need_go
  tool_module "$CRICTL_DIR" cri-tools "sigs.k8s.io/cri-tools@$CRI_TOOLS_VERSION" sigs.k8s.io/cri-tools/cmd/crictl
  build_tools "$CRICTL_DIR" "$stamp" "$GO_LDFLAGS_BASE -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRI_TOOLS_VERSION"
}

build_cni() {
  local stamp="cni-plugins $CNI_PLUGINS_VERSION recipe $RECIPE"
  local module=github.com/containernetworking/plugins
  if stamp_ok "$CNI_DIR" "$stamp" bridge host-local loopback; then log "cni-plugins $CNI_PLUGINS_VERSION: up to date ($CNI_DIR/bin)"; return; fi
  log "building CNI plugins bridge, host-local, loopback $CNI_PLUGINS_VERSION ($module) into $CNI_DIR/bin"
  need_go
  tool_module "$CNI_DIR" cni "$module@$CNI_PLUGINS_VERSION" \
    "$module/plugins/main/bridge" "$module/plugins/ipam/host-local" "$module/plugins/main/loopback"
  build_tools "$CNI_DIR" "$stamp" "$GO_LDFLAGS_BASE"
}

# The pod sandbox's only process: it holds the pod's namespaces, reaps the zombies of a pod
# that shares its PID namespace, and exits on SIGINT/SIGTERM. Written here so that no image
# has to be pulled; images.sh puts it into the pause image.
build_pause() {
  local stamp="pause $PAUSE_VERSION recipe $RECIPE"
  if stamp_ok "$PAUSE_DIR" "$stamp" pause; then log "pause $PAUSE_VERSION: up to date ($PAUSE_DIR/bin)"; return; fi
  log "building pause $PAUSE_VERSION into $PAUSE_DIR/bin"
  need_go
  rm -rf "$PAUSE_DIR/src" && mkdir -p "$PAUSE_DIR/src/cmd/pause"
  printf 'module jtp.local/testenv/pause\n\ngo 1.26.0\n\ntool jtp.local/testenv/pause/cmd/pause\n' > "$PAUSE_DIR/src/go.mod"
  cat > "$PAUSE_DIR/src/cmd/pause/main.go" <<'GO'
// Command pause is the process of a pod sandbox: it waits for SIGINT or SIGTERM
// and reaps every child that is handed to it as PID 1.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
GO
  build_tools "$PAUSE_DIR" "$stamp" "$GO_LDFLAGS_BASE"
}

main() {
  mkdir -p "$CACHE_ROOT"
  # One build at a time per cache, even from concurrent test binaries or CI steps.
  exec 9>"$CACHE_ROOT/.build.lock"
  flock 9
  local targets=("$@") t start
  [[ ${#targets[@]} -gt 0 ]] || targets=(etcd kubernetes helm containerd runc crictl cni pause)
  for t in "${targets[@]}"; do
    start=$SECONDS
    case "$t" in
      etcd) build_etcd ;;
      kubernetes) build_kubernetes ;;
      helm) build_helm ;;
      containerd) build_containerd ;;
      runc) build_runc ;;
      crictl) build_crictl ;;
      cni) build_cni ;;
      pause) build_pause ;;
      *) die "unknown component '$t' (etcd, kubernetes, helm, containerd, runc, crictl, cni, pause)" ;;
    esac
    (( SECONDS - start < 2 )) || log "$t: done in $((SECONDS - start))s"
  done
}
main "$@"
