# shellcheck shell=bash
# Sourced by .ci/run (set -euo pipefail is in effect there).
#
# Makes a Docker engine available on this machine and builds the local test
# images, so that @castore-ts/testing can start PostgreSQL and S3 through
# testcontainers:
#   1. installs docker.io and debootstrap via apt when dockerd/debootstrap are
#      missing (apt-get update first);
#   2. starts dockerd in the background (no iptables, no default bridge: all
#      containers use host networking and stay on loopback) when `docker info`
#      fails, and polls until it answers (fails loudly after ~60 s);
#   3. builds castore-test/postgres:15 and castore-test/s3:1 unless
#      `docker image inspect` already finds them (scripts/images/);
#   4. exports the testcontainers settings this engine needs.
#
# Tunables (environment):
#   CASTORE_DOCKER_DATA_ROOT  dockerd --data-root (default /var/lib/castore-docker)
#   CASTORE_DOCKER_LOG        dockerd log file   (default /var/log/castore-dockerd.log)
#   CASTORE_DOCKER_WAIT_S     seconds to wait for dockerd (default 60)
#   CASTORE_IMAGE_CACHE       rootfs / npm cache for image builds (see scripts/images)

_ci_docker_repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

_ci_log() { printf '[ci/docker %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

_ci_sudo() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

ci_docker_install() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  if [ "${#missing[@]}" -eq 0 ]; then
    _ci_log "docker.io and debootstrap already installed"
    return 0
  fi
  local t0=$SECONDS
  _ci_log "installing ${missing[*]} via apt"
  # apt's own lock serialises parallel installs; wait for it instead of failing.
  _ci_sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
  _ci_sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
    install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # docker.io's package scripts may try to start the service; there is no init
  # system here, so we start dockerd ourselves below.
  _ci_log "apt install took $((SECONDS - t0)) s"
}

ci_docker_start() {
  if docker info >/dev/null 2>&1; then
    _ci_log "docker engine already running ($(docker info --format '{{.ServerVersion}}' 2>/dev/null || echo '?'))"
    return 0
  fi
  local data_root="${CASTORE_DOCKER_DATA_ROOT:-/var/lib/castore-docker}"
  local log_file="${CASTORE_DOCKER_LOG:-/var/log/castore-dockerd.log}"
  local wait_s="${CASTORE_DOCKER_WAIT_S:-60}"
  local t0=$SECONDS
  _ci_sudo mkdir -p "$data_root" "$(dirname "$log_file")"
  _ci_log "starting dockerd (data root $data_root, log $log_file)"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  # setsid + nohup: the engine outlives this shell. It must not inherit the
  # setup lock's descriptor, or it would hold the lock for its whole life.
  "${sudo[@]}" setsid nohup dockerd --iptables=false --ip6tables=false --bridge=none \
    --data-root "$data_root" >>"$log_file" 2>&1 </dev/null {_ci_docker_lock_fd}>&- &
  local pid=$!
  until docker info >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null && ! docker info >/dev/null 2>&1; then
      _ci_log "ERROR: dockerd exited during startup; last log lines:"
      tail -n 40 "$log_file" >&2 || true
      return 1
    fi
    if [ $((SECONDS - t0)) -ge "$wait_s" ]; then
      _ci_log "ERROR: dockerd did not answer 'docker info' within ${wait_s} s; last log lines:"
      tail -n 40 "$log_file" >&2 || true
      return 1
    fi
    sleep 0.5
  done
  _ci_log "dockerd ready after $((SECONDS - t0)) s (pid $pid)"
}

ci_docker_build_images() {
  local t0=$SECONDS
  "$_ci_docker_repo_root/scripts/images/build-images.sh" postgres s3
  _ci_log "test images ready after $((SECONDS - t0)) s"
}

ci_docker_setup() {
  local t0=$SECONDS
  # Other jobs on the same machine may run this at the same time: one at a time.
  exec {_ci_docker_lock_fd}>/tmp/castore-docker.lock
  flock "$_ci_docker_lock_fd"
  ci_docker_install
  ci_docker_start
  ci_docker_build_images
  flock -u "$_ci_docker_lock_fd"
  exec {_ci_docker_lock_fd}>&-
  # No bridge network: testcontainers must not look for a bridge gateway, and
  # the reaper image cannot be pulled (tests stop their own containers).
  export TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1
  export TESTCONTAINERS_RYUK_DISABLED=true
  _ci_log "docker setup done in $((SECONDS - t0)) s"
}

ci_docker_setup
