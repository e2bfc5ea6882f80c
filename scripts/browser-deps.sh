#!/usr/bin/env bash
# What the dashboard's browser test needs: Debian's chromium and Python's
# playwright (which drives it; playwright's own browser download is not
# used). Installs whichever is missing, like scripts/services.sh does for
# the databases: chromium from Debian's packages when running as root,
# playwright with pip.
#
#   scripts/browser-deps.sh     exits 0 when both are there
set -euo pipefail

log() { echo "browser-deps: $*" >&2; }

if [[ ! -x /usr/bin/chromium ]]; then
  if [[ $(id -u) -ne 0 ]]; then
    log "missing: chromium. Install it with: sudo apt-get install -y chromium"
    exit 1
  fi
  log "installing chromium from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi

if ! python3 -c 'import playwright.sync_api' 2>/dev/null; then
  log "installing playwright with pip"
  pip=(python3 -m pip install --quiet playwright)
  # Debian's system python (PEP 668) refuses without the flag.
  "${pip[@]}" 2>/dev/null || "${pip[@]}" --break-system-packages
fi
