# shellcheck shell=bash
# Shared by the image build scripts (build-images.sh, build-server-image.sh):
# the log, the checks, the Debian mirror and the debootstrap minbase rootfs
# every image starts from, and the chroot steps that turn a copy of it into an
# image rootfs. Sourced, not run: the caller sets IMAGES_LOG_TAG (its log
# prefix) first and has `set -euo pipefail` in effect.
#
# Environment: CASTORE_IMAGE_CACHE (rootfs / npm cache, default
# /var/cache/castore-images), CASTORE_DEBIAN_MIRROR (overrides the mirror read
# from /etc/apt).

: "${IMAGES_LOG_TAG:?set IMAGES_LOG_TAG before sourcing scripts/images/lib.sh}"

SUITE=bookworm
CACHE="${CASTORE_IMAGE_CACHE:-/var/cache/castore-images}"
# apt options for the chroot: the mirror may be a dated snapshot.
APT_OPTS=(-o Acquire::Check-Valid-Until=false -o Acquire::Check-Date=false -o Acquire::Languages=none -o DPkg::Lock::Timeout=300)

T_START=$SECONDS
log() { printf '[%s %s +%3ds] %s\n' "$IMAGES_LOG_TAG" "$(date +%H:%M:%S)" "$((SECONDS - T_START))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Every build debootstraps, chroots and talks to the docker engine.
require_root_and_docker() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot)"
  command -v docker >/dev/null || die "docker CLI not found (run .ci/lib/docker.sh first)"
  docker info >/dev/null 2>&1 || die "docker engine not reachable (run .ci/lib/docker.sh first)"
}

# One image build at a time per cache: the scripts share the base rootfs and
# may be run directly, without the CI lock.
lock_cache() {
  mkdir -p "$CACHE"
  exec {IMAGES_CACHE_LOCK_FD}>"$CACHE/.lock"
  flock "$IMAGES_CACHE_LOCK_FD"
}

# The mirror this machine's apt uses (CASTORE_DEBIAN_MIRROR overrides it).
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

# The minbase rootfs every image starts from, debootstrapped once and cached
# ($CACHE/base-$SUITE, complete when it holds .castore-complete).
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

# /proc mounts of the work rootfs, unmounted on exit even when a step dies.
ROOTFS_MOUNTS=()
cleanup_mounts() {
  local m
  for m in "${ROOTFS_MOUNTS[@]}"; do umount -l "$m" 2>/dev/null || true; done
  ROOTFS_MOUNTS=()
}
trap cleanup_mounts EXIT

# new_rootfs NAME: sets ROOTFS to a fresh copy of the base rootfs
# ($CACHE/work-NAME), ready for chroot apt-get (not called in a subshell: the
# mounts are tracked here).
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

# chroot_apt_install ROOT PACKAGE...: the apt output goes to a log shown only
# when the install fails.
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

# strip_rootfs ROOT: undoes new_rootfs's chroot setup and drops what an image
# does not need (apt lists and caches, docs, logs), before `docker import`.
strip_rootfs() {
  local root="$1"
  chroot "$root" apt-get clean
  cleanup_mounts
  rm -f "$root/usr/sbin/policy-rc.d"
  : >"$root/etc/resolv.conf"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* \
    "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*.log "$root"/tmp/*
}

# import_rootfs ROOT IMAGE [docker import --change/--message args...]: the
# image replaces any previous one of that name; the previous one is removed
# unless a container still uses it (or the import produced the same id).
import_rootfs() {
  local root="$1" image="$2"; shift 2
  local t0=$SECONDS old_id
  old_id="$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
  tar --numeric-owner -C "$root" -c . | docker import "$@" - "$image" >/dev/null
  if [ -n "$old_id" ] && [ "$old_id" != "$(docker image inspect --format '{{.Id}}' "$image")" ]; then
    docker rmi "$old_id" >/dev/null 2>&1 || true
  fi
  log "docker import $image took $((SECONDS - t0)) s ($(docker image inspect --format '{{.Size}}' "$image" | awk '{printf "%d MB", $1/1e6}'))"
  rm -rf "$root"
}
