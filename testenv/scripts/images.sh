#!/usr/bin/env bash
# Builds the images the test node needs, on this machine, as OCI image layouts (umoci) and
# docker-archive files for `ctr images import` (skopeo): no registry is ever asked.
#   $JTP_CACHE_DIR/testenv/images/pause.tar    jtp-testenv.invalid/pause:<PAUSE_VERSION>, the sandbox
#                                              image (its /pause comes from build.sh)
#   $JTP_CACHE_DIR/testenv/images/busybox.tar  busybox:1.36, the operator's default run image, made
#                                              of Debian's busybox-static
# The tag busybox:1.36 is the name the operator and the chart use by default; the binary inside
# is the busybox of Debian 12's busybox-static package (1.35.0), which offers the same applets to
# the shell scripts the tests run. A matching stamp means "up to date".
# Usage: images.sh   (prints nothing on stdout)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

RECIPE=1

# An OCI layout at $1/oci with one image tagged $2 whose only layer is the directory $3.
# Remaining arguments go to `umoci config` (entrypoint, cmd, env, user...).
make_image() {
  local dir=$1 tag=$2 rootfs=$3; shift 3
  umoci init --layout "$dir/oci"
  umoci new --image "$dir/oci:$tag"
  umoci insert --image "$dir/oci:$tag" "$rootfs" /
  umoci config --image "$dir/oci:$tag" --os linux --architecture amd64 "$@"
}

build_images() {
  command -v umoci >/dev/null || die "umoci is needed to build the test images (apt-get install umoci)"
  command -v skopeo >/dev/null || die "skopeo is needed to build the test images (apt-get install skopeo)"
  dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' \
    || die "Debian's static busybox is needed for the busybox image (apt-get install busybox-static)"
  [[ -x "$PAUSE_DIR/bin/pause" ]] || die "pause is not built (testenv/scripts/build.sh pause)"
  local busybox_pkg stamp
  busybox_pkg=$(dpkg-query -W -f '${Version}' busybox-static)
  stamp="images recipe $RECIPE pause $PAUSE_VERSION busybox-static $busybox_pkg"
  if [[ -f "$IMAGES_DIR/.stamp" && "$(cat "$IMAGES_DIR/.stamp")" == "$stamp" \
        && -f "$IMAGES_DIR/pause.tar" && -f "$IMAGES_DIR/busybox.tar" ]]; then
    log "images: up to date ($IMAGES_DIR)"; return
  fi
  log "building the pause and busybox images into $IMAGES_DIR"
  local work="$IMAGES_DIR.tmp"
  rm -rf "$work" && mkdir -p "$work"

  mkdir -p "$work/pause-root"
  install -m 0755 "$PAUSE_DIR/bin/pause" "$work/pause-root/pause"
  make_image "$work/pause" pause "$work/pause-root" --config.entrypoint /pause --config.user 65535:65535
  skopeo copy --quiet "oci:$work/pause/oci:pause" "docker-archive:$work/pause.tar:$SANDBOX_IMAGE"

  local root="$work/busybox-root" applet
  mkdir -p "$root"/{bin,etc,root,tmp,home,var,usr/bin,usr/sbin,sbin}
  chmod 1777 "$root/tmp"
  chmod 0700 "$root/root"
  install -m 0755 /bin/busybox "$root/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [[ -e "$root/bin/$applet" ]] || ln -s busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' > "$root/etc/group"
  make_image "$work/busybox" busybox "$root" --config.cmd sh \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  skopeo copy --quiet "oci:$work/busybox/oci:busybox" "docker-archive:$work/busybox.tar:$BUSYBOX_IMAGE"

  rm -rf "$IMAGES_DIR" && mkdir -p "$IMAGES_DIR"
  mv "$work/pause.tar" "$work/busybox.tar" "$IMAGES_DIR/"
  rm -rf "$work"
  printf '%s' "$stamp" > "$IMAGES_DIR/.stamp"
}

mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.build.lock"
flock 9
build_images
