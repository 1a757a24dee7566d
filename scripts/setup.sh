#!/usr/bin/env bash
# One setup for both quick-start commands: installs what is missing, quickly when nothing is.
#   scripts/setup.sh          npm dependencies + build
#   scripts/setup.sh --test   the same, plus the Debian packages the tests use as real peers
set -euo pipefail
cd "$(dirname "$0")/.."

# Real peers the tests talk to (DESIGN §5): OpenSSL, osmo-auc-gen, xmlsec1, xmllint, PostgreSQL,
# HAProxy (the load balancer of the several-hosts test), the browser of the portal's tests
# (Debian's chromium, driven by playwright-core; never a downloaded one), SoftHSM and OpenSC's
# pkcs11-tool (operator keys in a PKCS#11 token), and swtpm with tpm2-tools and the TSS's swtpm
# TCTI (the TPM 2.0 device module).
TEST_DEBS=(openssl libosmocore-utils xmlsec1 libxml2-utils postgresql chromium haproxy
  softhsm2 opensc swtpm swtpm-tools tpm2-tools libtss2-tcti-swtpm0)

log() { printf 'setup: %s\n' "$*" >&2; }

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  log "Node.js 20 or newer is required (found $(node --version))"; exit 1
fi

# npm dependencies: reinstall only when the lockfile changed since the last install.
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.simcred-lock-hash
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_hash" ]; then
  log "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > "$stamp"
fi

# Build: only when a source file is newer than the last build.
build_stamp=dist/.build-stamp
if [ ! -f "$build_stamp" ] || [ -n "$(find src test scripts package.json tsconfig.json -newer "$build_stamp" -print -quit)" ]; then
  log "building"
  npx tsc -p tsconfig.json
  touch "$build_stamp"
fi

# The portal's front end (web/ → web/dist, served by the portal): only when web/ changed.
web_stamp=dist/.web-build-stamp
if [ ! -f "$web_stamp" ] || [ -n "$(find web/src web/index.html web/vite.config.ts web/tsconfig.json package.json -newer "$web_stamp" -print -quit)" ]; then
  log "building the portal front end"
  npx vite build web --logLevel warn
  touch "$web_stamp"
fi

if [ "${1:-}" = "--test" ]; then
  missing=()
  for pkg in "${TEST_DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
      log "installing Debian packages: ${missing[*]}"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq >/dev/null
      apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
      log "please install these Debian packages first: sudo apt-get install -y ${missing[*]}"; exit 1
    fi
  fi
fi
