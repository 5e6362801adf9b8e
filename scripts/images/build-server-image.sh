#!/usr/bin/env bash
# Builds castore/server:dev: the castore CLI (`castore serve` and every other
# command) from this working tree, on Debian's nodejs, in the same debootstrap
# minbase rootfs the test images start from (see build-images.sh):
#
#   /opt/castore              `pnpm deploy --prod` of @castore/cli: its dist/ and
#                             production node_modules (workspace packages built)
#   /usr/local/bin/castore    node /opt/castore/dist/main.js "$@" (the entrypoint)
#   /data                     a volume for lmdb:///data
#
#   docker run --rm --network host -v /srv/castore:/data castore/server:dev \
#     serve --listen 127.0.0.1:8000 --store lmdb:///data
#
# Usage: scripts/images/build-server-image.sh      (always rebuilds; ~2–4 min)
#
# Environment: CASTORE_SERVER_IMAGE (default castore/server:dev),
# CASTORE_IMAGE_CACHE (the rootfs cache shared with build-images.sh, default
# /var/cache/castore-images), CASTORE_DEBIAN_MIRROR. Needs root, debootstrap,
# a running docker engine (.ci/lib/docker.sh) and pnpm (corepack). Not part of
# CI: the test images are all CI builds.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SUITE=bookworm
CACHE="${CASTORE_IMAGE_CACHE:-/var/cache/castore-images}"
IMAGE="${CASTORE_SERVER_IMAGE:-castore/server:dev}"
APT_OPTS=(-o Acquire::Check-Valid-Until=false -o Acquire::Check-Date=false -o Acquire::Languages=none -o DPkg::Lock::Timeout=300)
export COREPACK_INTEGRITY_KEYS=0

T_START=$SECONDS
log() { printf '[server-image %s +%3ds] %s\n' "$(date +%H:%M:%S)" "$((SECONDS - T_START))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot)"
command -v docker >/dev/null || die "docker CLI not found (run .ci/lib/docker.sh first)"
docker info >/dev/null 2>&1 || die "docker engine not reachable (run .ci/lib/docker.sh first)"
command -v pnpm >/dev/null || die "pnpm not found (corepack enable)"

debian_mirror() {
  if [ -n "${CASTORE_DEBIAN_MIRROR:-}" ]; then echo "$CASTORE_DEBIAN_MIRROR"; return; fi
  local f uri
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

# The minbase rootfs build-images.sh makes and caches (same path, same marker).
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

ROOTFS="$CACHE/work-server"
APP="$CACHE/server-app"
cleanup() {
  umount -l "$ROOTFS/proc" 2>/dev/null || true
}
trap cleanup EXIT

# 1. The app: build the CLI and what it depends on, then a production deploy of it.
build_app() {
  local t0=$SECONDS
  (cd "$REPO" && pnpm exec turbo run build --filter=@castore/cli... --output-logs=errors-only) >&2 \
    || die "build of @castore/cli failed"
  log "turbo build of @castore/cli and its workspace dependencies took $((SECONDS - t0)) s"
  t0=$SECONDS
  rm -rf "$APP"
  # --legacy: copy the workspace packages (dist/ included) instead of needing inject-workspace-packages.
  (cd "$REPO" && flock /tmp/castore-pnpm.lock pnpm --filter @castore/cli deploy --prod --legacy "$APP") >"$CACHE/server-deploy.log" 2>&1 \
    || { tail -n 30 "$CACHE/server-deploy.log" >&2; die "pnpm deploy failed (log: $CACHE/server-deploy.log)"; }
  # pnpm installs @castore/conformance's optional vitest peer (and vite, rollup,
  # esbuild with it); only its ./vitest entry loads them and the CLI never does.
  local pruned
  pruned="$(cd "$APP/node_modules/.pnpm" && ls -d vitest@* vite@* @vitest+* rollup@* @rollup+* esbuild@* @esbuild+* 2>/dev/null | tr '\n' ' ' || true)"
  if [ -n "$pruned" ]; then (cd "$APP/node_modules/.pnpm" && rm -rf $pruned); fi
  rm -rf "$APP/src"
  log "pnpm deploy --prod took $((SECONDS - t0)) s ($(du -sh "$APP" | cut -f1) after pruning the test runner)"
}

# 2. The rootfs: base + nodejs from Debian + the app.
build_rootfs() {
  local t0=$SECONDS
  umount -l "$ROOTFS/proc" 2>/dev/null || true
  rm -rf "$ROOTFS"
  cp -a "$CACHE/base-$SUITE" "$ROOTFS"
  rm -f "$ROOTFS/.castore-complete"
  printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"
  chmod +x "$ROOTFS/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
  mount -t proc proc "$ROOTFS/proc"
  local aptlog="$ROOTFS.apt.log"
  { chroot "$ROOTFS" env DEBIAN_FRONTEND=noninteractive LC_ALL=C apt-get "${APT_OPTS[@]}" update -qq &&
    chroot "$ROOTFS" env DEBIAN_FRONTEND=noninteractive LC_ALL=C apt-get "${APT_OPTS[@]}" \
      install -y -qq --no-install-recommends nodejs ca-certificates; } >"$aptlog" 2>&1 ||
    { tail -n 40 "$aptlog" >&2; die "apt-get install nodejs failed in the chroot (log: $aptlog)"; }
  rm -f "$aptlog"
  log "apt-get install nodejs ca-certificates took $((SECONDS - t0)) s (node $(chroot "$ROOTFS" node --version))"

  mkdir -p "$ROOTFS/opt/castore" "$ROOTFS/data"
  cp -a "$APP/." "$ROOTFS/opt/castore/"
  cat >"$ROOTFS/usr/local/bin/castore" <<'EOF'
#!/bin/sh
# castore CLI (castore/server image): serve, import, ls, get, verify, conformance
exec /usr/bin/node /opt/castore/dist/main.js "$@"
EOF
  chmod 0755 "$ROOTFS/usr/local/bin/castore"
  chroot "$ROOTFS" env -i PATH=/usr/local/bin:/usr/bin:/bin castore --help >/dev/null \
    || die "castore --help fails inside the rootfs"

  chroot "$ROOTFS" apt-get clean
  umount -l "$ROOTFS/proc"
  rm -f "$ROOTFS/usr/sbin/policy-rc.d"
  : >"$ROOTFS/etc/resolv.conf"
  rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/usr/share/doc/* \
    "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/var/log/*.log "$ROOTFS"/tmp/*
}

# 3. The image.
import_image() {
  local t0=$SECONDS old_id revision
  revision="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  old_id="$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
  tar --numeric-owner -C "$ROOTFS" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV NODE_ENV=production' \
    --change 'WORKDIR /data' \
    --change 'VOLUME /data' \
    --change 'EXPOSE 8000' \
    --change 'ENTRYPOINT ["/usr/local/bin/castore"]' \
    --change 'CMD ["serve", "--listen", "127.0.0.1:8000", "--store", "lmdb:///data"]' \
    --message "castore server: Debian $SUITE + nodejs + castore CLI (working tree at $revision)" \
    - "$IMAGE" >/dev/null
  if [ -n "$old_id" ] && [ "$old_id" != "$(docker image inspect --format '{{.Id}}' "$IMAGE")" ]; then
    docker rmi "$old_id" >/dev/null 2>&1 || true
  fi
  log "docker import $IMAGE took $((SECONDS - t0)) s ($(docker image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%d MB", $1/1e6}'))"
  rm -rf "$ROOTFS"
  docker run --rm "$IMAGE" --help >/dev/null || die "docker run $IMAGE --help failed"
}

main() {
  mkdir -p "$CACHE"
  exec {lockfd}>"$CACHE/.lock"
  flock "$lockfd" # one image build at a time per cache (shared with build-images.sh)
  ensure_base_rootfs
  build_app
  build_rootfs
  import_image
  log "built $IMAGE in $((SECONDS - T_START)) s"
}

main "$@"
