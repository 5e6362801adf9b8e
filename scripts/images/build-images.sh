#!/usr/bin/env bash
# Builds the local docker images used by @castore/testing (no registry needed):
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
SUITE=bookworm
CACHE="${CASTORE_IMAGE_CACHE:-/var/cache/castore-images}"
POSTGRES_IMAGE="${CASTORE_TEST_POSTGRES_IMAGE_NAME:-castore-test/postgres:15}"
S3_IMAGE="${CASTORE_TEST_S3_IMAGE_NAME:-castore-test/s3:1}"
# apt options for the chroot: the mirror may be a dated snapshot.
APT_OPTS=(-o Acquire::Check-Valid-Until=false -o Acquire::Check-Date=false -o Acquire::Languages=none -o DPkg::Lock::Timeout=300)

T_START=$SECONDS
log() { printf '[images %s +%3ds] %s\n' "$(date +%H:%M:%S)" "$((SECONDS - T_START))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot)"
command -v docker >/dev/null || die "docker CLI not found (run .ci/lib/docker.sh first)"
docker info >/dev/null 2>&1 || die "docker engine not reachable (run .ci/lib/docker.sh first)"

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

debian_mirror() {
  if [ -n "${CASTORE_DEBIAN_MIRROR:-}" ]; then echo "$CASTORE_DEBIAN_MIRROR"; return; fi
  local f uri
  # deb822 sources: the first URIs line that is not the security archive.
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    uri="$(awk 'tolower($1)=="uris:" { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")"
    if [ -n "$uri" ]; then echo "$uri"; return; fi
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -e "$f" ] || continue
    uri="$(awk '$1=="deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($i !~ /security/) { print $i; exit } ; break } }' "$f")"
    if [ -n "$uri" ]; then echo "$uri"; return; fi
  done
  die "no Debian mirror found in /etc/apt/sources.list.d/*.sources (set CASTORE_DEBIAN_MIRROR)"
}

# One minbase rootfs shared by both images.
ensure_base_rootfs() {
  local base="$CACHE/base-$SUITE"
  if [ -f "$base/.castore-complete" ]; then
    log "reusing cached base rootfs $base"
    return
  fi
  command -v debootstrap >/dev/null || die "debootstrap not installed (apt-get install debootstrap)"
  local mirror; mirror="$(debian_mirror)"
  local t0=$SECONDS
  log "debootstrap --variant=minbase $SUITE from $mirror"
  rm -rf "$base" "$base.tmp"
  mkdir -p "$CACHE/debs"
  debootstrap --variant=minbase --cache-dir="$CACHE/debs" "$SUITE" "$base.tmp" "$mirror" \
    >"$CACHE/debootstrap.log" 2>&1 || { tail -n 30 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
  touch "$base.tmp/.castore-complete"
  mv "$base.tmp" "$base"
  log "base rootfs done in $((SECONDS - t0)) s ($(du -sh "$base" | cut -f1))"
}

ROOTFS_MOUNTS=()
cleanup_mounts() {
  local m
  for m in "${ROOTFS_MOUNTS[@]}"; do umount -l "$m" 2>/dev/null || true; done
  ROOTFS_MOUNTS=()
}
trap cleanup_mounts EXIT

# new_rootfs NAME: sets ROOTFS to a fresh copy of the base rootfs, ready for
# chroot apt-get (not called in a subshell: the mounts are tracked here).
new_rootfs() {
  local root="$CACHE/work-$1"
  ROOTFS="$root"
  umount -l "$root/proc" 2>/dev/null || true # left over from an interrupted run
  rm -rf "$root"
  cp -a "$CACHE/base-$SUITE" "$root"
  rm -f "$root/.castore-complete"
  # no services may start inside the chroot
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod +x "$root/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  mount -t proc proc "$root/proc"
  ROOTFS_MOUNTS+=("$root/proc")
}

chroot_apt_install() {
  local root="$1"; shift
  local t0=$SECONDS
  local aptlog="$root.apt.log"
  { chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C apt-get "${APT_OPTS[@]}" update -qq &&
    chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C apt-get "${APT_OPTS[@]}" \
      install -y -qq --no-install-recommends "$@"; } >"$aptlog" 2>&1 ||
    { tail -n 40 "$aptlog" >&2; die "apt-get install $* failed in the chroot (log: $aptlog)"; }
  rm -f "$aptlog"
  log "apt-get install $* took $((SECONDS - t0)) s"
}

# finish_rootfs ROOT IMAGE [docker import --change args...]
finish_rootfs() {
  local root="$1" image="$2"; shift 2
  chroot "$root" apt-get clean
  cleanup_mounts
  rm -f "$root/usr/sbin/policy-rc.d"
  : >"$root/etc/resolv.conf"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* \
    "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*.log "$root"/tmp/*
  local t0=$SECONDS old_id
  old_id="$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
  tar --numeric-owner -C "$root" -c . | docker import "$@" - "$image" >/dev/null
  # A rebuild (FORCE=1) leaves the previous image untagged: drop it unless a container uses it.
  if [ -n "$old_id" ]; then docker rmi "$old_id" >/dev/null 2>&1 || true; fi
  log "docker import $image took $((SECONDS - t0)) s ($(docker image inspect --format '{{.Size}}' "$image" | awk '{printf "%d MB", $1/1e6}'))"
  rm -rf "$root"
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
  mkdir -p "$CACHE"
  # One build at a time per cache (the CI lock may not be held by direct callers).
  exec {lockfd}>"$CACHE/.lock"
  flock "$lockfd"
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
