#!/usr/bin/env bash
# UI tests: node:test unit tests of the pure JS modules, then the
# headless-Chromium test against a real `strand serve`.
#   scripts/ui-test.sh            # both (builds strand unless STRAND_BIN is set)
#   scripts/ui-test.sh --unit     # unit tests only (no browser, no strand)
#   scripts/ui-test.sh install    # only install chromium and playwright-core
#   scripts/ui-test.sh run        # only run (after install; STRAND_BIN set)
# Installs Debian's chromium when missing (browsers cannot be downloaded by
# playwright here) and the pinned playwright-core with `npm ci`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT/tests/ui"

if [[ "${1:-}" == "--unit" ]]; then
  exec node --test tree.test.mjs logic.test.mjs views.test.mjs monitor.test.mjs
fi

install() {
  if [[ ! -x /usr/bin/chromium ]]; then
    export DEBIAN_FRONTEND=noninteractive
    # Package lists on a fresh machine may be stale: refresh them first.
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >/dev/null
  fi
  npm ci --prefer-offline --no-audit --no-fund --loglevel=error
}

case "${1:-}" in
  install) install; exit 0 ;;
  run) ;;
  *) install ;;
esac

if [[ -z "${STRAND_BIN:-}" ]]; then
  (cd "$ROOT" && cargo build --quiet --bin strand)
  export STRAND_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/strand"
fi

mkdir -p "$ROOT/target/ui-artifacts"
node --test tree.test.mjs logic.test.mjs views.test.mjs monitor.test.mjs
node --test --test-timeout=600000 browser.test.mjs views.browser.test.mjs monitor.browser.test.mjs
echo "screenshots: $ROOT/target/ui-artifacts/"
