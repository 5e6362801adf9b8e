#!/usr/bin/env bash
# Builds the local docker images used by @castore-ts/testing (no registry needed):
#
#   castore-test/postgres:15  Debian bookworm (minbase) + postgresql-15
#   castore-test/s3:1         Debian bookworm (minbase) + nodejs + s3rver 3.7.1
#                             (npm-installed on the host from scripts/images/s3/
#                             package-lock.json, copied to /opt/s3rver), started
#                             by /usr/local/bin/castore-s3-start [PORT]
#
# Usage: scripts/images/build-images.sh [postgres] [s3]   (default: both)
#
# An image is skipped when `docker image inspect` finds it (FORCE=1 rebuilds).
# Both images start from one debootstrap minbase rootfs, cached under
# $CASTORE_IMAGE_CACHE (default /var/cache/castore-images); each image adds its
# packages to a copy of it with apt-get in a chroot.
#
# The Debian mirror is read at run time from the `URIs:` line of
# /etc/apt/sources.list.d/*.sources (or `deb` lines of /etc/apt/sources.list);
# CASTORE_DEBIAN_MIRROR overrides it. Needs root, debootstrap and a running
# docker engine (see .ci/lib/docker.sh).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IMAGES_LOG_TAG=images
# shellcheck source=scripts/images/lib.sh
. "$HERE/lib.sh"
POSTGRES_IMAGE="${CASTORE_TEST_POSTGRES_IMAGE_NAME:-castore-test/postgres:15}"
S3_IMAGE="${CASTORE_TEST_S3_IMAGE_NAME:-castore-test/s3:1}"

require_root_and_docker

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# finish_rootfs ROOT IMAGE [docker import --change args...]
finish_rootfs() {
  local root="$1" image="$2"; shift 2
  strip_rootfs "$root"
  import_rootfs "$root" "$image" "$@"
}

build_postgres() {
  if [ "${FORCE:-0}" != 1 ] && image_exists "$POSTGRES_IMAGE"; then
    log "$POSTGRES_IMAGE exists, skipping build"
    return
  fi
  local t0=$SECONDS
  ensure_base_rootfs
  new_rootfs postgres
  local root="$ROOTFS"
  chroot_apt_install "$root" postgresql-15
  # The package's default cluster is not used: tests initdb a fresh folder.
  rm -rf "$root/var/lib/postgresql/15/main" "$root/etc/postgresql/15/main"
  finish_rootfs "$root" "$POSTGRES_IMAGE" \
    --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'USER postgres' \
    --change 'WORKDIR /var/lib/postgresql' \
    --change 'CMD ["/bin/sh", "-c", "initdb -A trust -D /tmp/pgdata >/dev/null && exec postgres -D /tmp/pgdata -k /tmp -c listen_addresses=127.0.0.1"]' \
    --message "castore test image: Debian $SUITE + postgresql-15"
  log "built $POSTGRES_IMAGE in $((SECONDS - t0)) s"
}

build_s3() {
  if [ "${FORCE:-0}" != 1 ] && image_exists "$S3_IMAGE"; then
    log "$S3_IMAGE exists, skipping build"
    return
  fi
  command -v npm >/dev/null || die "npm not found on the host (needed to install s3rver)"
  local t0=$SECONDS
  ensure_base_rootfs
  # s3rver is plain JavaScript: install it on the host from the committed lockfile.
  local npmdir="$CACHE/s3rver-npm"
  rm -rf "$npmdir" && mkdir -p "$npmdir"
  cp "$HERE/s3/package.json" "$HERE/s3/package-lock.json" "$npmdir/"
  local t1=$SECONDS
  (cd "$npmdir" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
  log "npm ci (s3rver) took $((SECONDS - t1)) s"
  new_rootfs s3
  local root="$ROOTFS"
  chroot_apt_install "$root" nodejs
  mkdir -p "$root/opt/s3rver"
  cp -a "$npmdir/." "$root/opt/s3rver/"
  install -m 0755 "$HERE/s3/castore-s3-start" "$root/usr/local/bin/castore-s3-start"
  chroot "$root" env -i PATH=/usr/bin:/bin node --version >/dev/null || die "node does not run inside the s3 rootfs"
  chroot "$root" env -i PATH=/usr/bin:/bin node /opt/s3rver/node_modules/s3rver/bin/s3rver.js --version >/dev/null \
    || die "s3rver does not run inside the s3 rootfs"
  finish_rootfs "$root" "$S3_IMAGE" \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV S3_DIRECTORY=/var/lib/s3rver' \
    --change 'CMD ["/usr/local/bin/castore-s3-start"]' \
    --message "castore test image: Debian $SUITE + nodejs + s3rver 3.7.1"
  log "built $S3_IMAGE in $((SECONDS - t0)) s"
}

main() {
  local targets=("$@")
  [ "${#targets[@]}" -gt 0 ] || targets=(postgres s3)
  lock_cache
  local t
  for t in "${targets[@]}"; do
    case "$t" in
      postgres) build_postgres ;;
      s3) build_s3 ;;
      *) die "unknown image '$t' (expected postgres or s3)" ;;
    esac
  done
  log "done in $((SECONDS - T_START)) s"
}

main "$@"
