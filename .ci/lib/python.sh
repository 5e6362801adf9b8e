# shellcheck shell=bash
# Sourced by .ci/run (set -euo pipefail is in effect there).
#
# Installs what the independent reference server (reference/python/, a
# tvix.castore.v1 DirectoryService in Python that
# packages/e2e/src/reference-server.test.ts runs `castore conformance` against)
# needs, from Debian's packages:
#   python3-grpcio, python3-grpc-tools, python3-protobuf  (for /usr/bin/python3)
#   b3sum                                                 (checks reference/python/blake3.py)
# Skipped when /usr/bin/python3 already imports grpc, grpc_tools and
# google.protobuf and b3sum is on PATH; otherwise a quiet apt-get update + install.
#
# Tunables (environment):
#   CASTORE_REFERENCE_PYTHON  the interpreter the test runs (default /usr/bin/python3);
#                             this script only installs Debian's packages for /usr/bin/python3

_ci_python_log() { printf '[ci/python %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

_ci_python_sudo() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

_ci_python_ready() {
  [ -x /usr/bin/python3 ] &&
    /usr/bin/python3 -c 'import grpc, grpc_tools.protoc, google.protobuf' >/dev/null 2>&1 &&
    command -v b3sum >/dev/null 2>&1
}

ci_python_setup() {
  if _ci_python_ready; then
    _ci_python_log "python3-grpcio, python3-grpc-tools, python3-protobuf and b3sum already installed"
    return 0
  fi
  local t0=$SECONDS
  _ci_python_log "installing python3-grpcio python3-grpc-tools python3-protobuf b3sum via apt"
  # apt's own lock serialises parallel installs; wait for it instead of failing.
  _ci_python_sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
  _ci_python_sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
    install -y -qq --no-install-recommends python3 python3-grpcio python3-grpc-tools python3-protobuf b3sum >/dev/null
  if ! _ci_python_ready; then
    _ci_python_log "installed, but /usr/bin/python3 still cannot import grpc, grpc_tools and google.protobuf, or b3sum is missing"
    return 1
  fi
  _ci_python_log "apt install took $((SECONDS - t0)) s"
}

ci_python_setup
