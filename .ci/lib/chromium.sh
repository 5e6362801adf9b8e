# shellcheck shell=bash
# Sourced by .ci/run (set -euo pipefail is in effect there).
#
# Installs Debian's chromium for the web view's browser tests
# (packages/e2e/src/web-browser.test.ts drives /usr/bin/chromium headless
# through playwright-core; playwright's own browser downloads are not used).
# Skipped when /usr/bin/chromium is already there.

_ci_chromium_log() { printf '[ci/chromium %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

_ci_chromium_sudo() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

ci_chromium_setup() {
  if [ -x /usr/bin/chromium ]; then
    _ci_chromium_log "chromium already installed"
    return 0
  fi
  local t0=$SECONDS
  _ci_chromium_log "installing chromium via apt"
  # apt's own lock serialises parallel installs; wait for it instead of failing.
  _ci_chromium_sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
  _ci_chromium_sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
    install -y -qq --no-install-recommends chromium >/dev/null
  if [ ! -x /usr/bin/chromium ]; then
    _ci_chromium_log "chromium install finished but /usr/bin/chromium is missing"
    return 1
  fi
  _ci_chromium_log "chromium installed in $((SECONDS - t0)) s"
}

ci_chromium_setup
