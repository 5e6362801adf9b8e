#!/usr/bin/env bash
# Builds castore/server:dev: the castore CLI (`castore serve` and every other
# command) from this working tree, on Debian's nodejs, in the same debootstrap
# minbase rootfs the test images start from (see lib.sh):
#
#   /opt/castore              `pnpm deploy --prod` of @castore-ts/cli: its dist/ and
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
IMAGES_LOG_TAG=server-image
# shellcheck source=scripts/images/lib.sh
. "$HERE/lib.sh"
IMAGE="${CASTORE_SERVER_IMAGE:-castore/server:dev}"
export COREPACK_INTEGRITY_KEYS=0

require_root_and_docker
command -v pnpm >/dev/null || die "pnpm not found (corepack enable)"

APP="$CACHE/server-app"

# 1. The app: build the CLI and what it depends on, then a production deploy of it.
build_app() {
  local t0=$SECONDS
  (cd "$REPO" && pnpm exec turbo run build --filter=@castore-ts/cli... --output-logs=errors-only) >&2 \
    || die "build of @castore-ts/cli failed"
  log "turbo build of @castore-ts/cli and its workspace dependencies took $((SECONDS - t0)) s"
  t0=$SECONDS
  rm -rf "$APP"
  # --legacy: copy the workspace packages (dist/ included) instead of needing inject-workspace-packages.
  (cd "$REPO" && flock /tmp/castore-pnpm.lock pnpm --filter @castore-ts/cli deploy --prod --legacy "$APP") >"$CACHE/server-deploy.log" 2>&1 \
    || { tail -n 30 "$CACHE/server-deploy.log" >&2; die "pnpm deploy failed (log: $CACHE/server-deploy.log)"; }
  # pnpm installs @castore-ts/conformance's optional vitest peer (and vite, rollup,
  # esbuild with it); only its ./vitest entry loads them and the CLI never does.
  local pruned
  pruned="$(cd "$APP/node_modules/.pnpm" && ls -d vitest@* vite@* @vitest+* rollup@* @rollup+* esbuild@* @esbuild+* 2>/dev/null | tr '\n' ' ' || true)"
  if [ -n "$pruned" ]; then (cd "$APP/node_modules/.pnpm" && rm -rf $pruned); fi
  rm -rf "$APP/src"
  log "pnpm deploy --prod took $((SECONDS - t0)) s ($(du -sh "$APP" | cut -f1) after pruning the test runner)"
}

# 2. The rootfs: base + nodejs from Debian + the app.
build_rootfs() {
  new_rootfs server
  chroot_apt_install "$ROOTFS" nodejs ca-certificates
  log "node in the rootfs: $(chroot "$ROOTFS" node --version)"

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

  strip_rootfs "$ROOTFS"
}

# 3. The image.
import_image() {
  local revision
  revision="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  import_rootfs "$ROOTFS" "$IMAGE" \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV NODE_ENV=production' \
    --change 'WORKDIR /data' \
    --change 'VOLUME /data' \
    --change 'EXPOSE 8000' \
    --change 'ENTRYPOINT ["/usr/local/bin/castore"]' \
    --change 'CMD ["serve", "--listen", "127.0.0.1:8000", "--store", "lmdb:///data"]' \
    --message "castore server: Debian $SUITE + nodejs + castore CLI (working tree at $revision)"
  docker run --rm "$IMAGE" --help >/dev/null || die "docker run $IMAGE --help failed"
}

main() {
  lock_cache
  ensure_base_rootfs
  build_app
  build_rootfs
  import_image
  log "built $IMAGE in $((SECONDS - T_START)) s"
}

main "$@"
