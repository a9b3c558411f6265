#!/usr/bin/env bash
# Builds the real test peers from Go modules into a content-addressed cache outside the repo
# (${OCM_TESTBIN_DIR:-/var/tmp/ocm-conductor-testbins}); a warm run only checks the cache.
set -euo pipefail
cd "$(dirname "$0")/.."
for script in test/peers/*/build.sh; do
  echo "== $script"
  bash "$script"
done
