#!/usr/bin/env bash
# Builds agentsim once per supported sdk-go generation (and the self-test reference server) into a
# content-addressed cache outside the repository, then points stable symlinks at the results:
#
#   $OCM_TESTBIN_DIR/agentsim-<version>-<hash>/agentsim     (hash of that build's go.mod, go.sum, *.go, recipe)
#   $OCM_TESTBIN_DIR/bin/agentsim-<version>                 -> the above; <version> is v1.1.0, v1.2.0 or v1.3
#   $OCM_TESTBIN_DIR/bin/agentsim-refserver                 -> agentsim-refserver-<hash>/refserver
#
# A build whose output already exists is skipped, so a warm run takes a few seconds.
# OCM_TESTBIN_DIR defaults to /var/tmp/ocm-conductor-testbins.
#
# Usage: build.sh [v1.1.0|v1.2.0|v1.3|refserver ...]   (default: all four)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out_root="${OCM_TESTBIN_DIR:-/var/tmp/ocm-conductor-testbins}"
mkdir -p "$out_root/bin"

if ! command -v go >/dev/null 2>&1; then
  echo "build.sh: the go command is not on PATH" >&2
  exit 1
fi
go_version="$(go env GOVERSION)"
build_flags=(-trimpath -buildvcs=false -ldflags "-s -w")

# name -> "modfile|tags"; modfile "go.mod" means the module's default file.
declare -A recipes=(
  [v1.1.0]="go.v1.1.0.mod|sdk_v1_1"
  [v1.2.0]="go.v1.2.0.mod|sdk_v1_2"
  [v1.3]="go.mod|"
  [refserver]="go.mod|"
)
all=(v1.1.0 v1.2.0 v1.3 refserver)

now_ms() { date +%s%3N; }

# content_hash <modfile> <package dir> <tags>: sha256 over the inputs of one build, first 16 hex digits.
content_hash() {
  local modfile="$1" pkgdir="$2" tags="$3" sumfile="${1%.mod}.sum"
  {
    printf 'recipe go=%s tags=%s flags=%s\n' "$go_version" "$tags" "${build_flags[*]}"
    for f in "$here/$modfile" "$here/$sumfile" $(find "$here/$pkgdir" -maxdepth 1 -name '*.go' | LC_ALL=C sort); do
      printf '== %s\n' "${f#"$here"/}"
      cat "$f"
    done
  } | sha256sum | cut -c1-16
}

build_one() {
  local name="$1"
  local recipe="${recipes[$name]:-}"
  if [[ -z "$recipe" ]]; then
    echo "build.sh: unknown target '$name' (known: ${all[*]})" >&2
    return 2
  fi
  local modfile="${recipe%%|*}" tags="${recipe#*|}"
  local pkgdir="." exe="agentsim" prefix="agentsim-$name" link="agentsim-$name"
  if [[ "$name" == refserver ]]; then
    pkgdir="refserver" exe="refserver" prefix="agentsim-refserver" link="agentsim-refserver"
  fi
  local hash dest start
  hash="$(content_hash "$modfile" "$pkgdir" "$tags")"
  dest="$out_root/$prefix-$hash"
  start="$(now_ms)"
  if [[ -x "$dest/$exe" ]]; then
    echo "build.sh: $name: cached $dest/$exe"
  else
    echo "build.sh: $name: building (modfile $modfile${tags:+, tags $tags}) ..."
    local tmp
    tmp="$(mktemp -d "$out_root/.build-$prefix-XXXXXX")"
    chmod 755 "$tmp"
    local args=(build "${build_flags[@]}" -o "$tmp/$exe")
    [[ "$modfile" != go.mod ]] && args+=(-modfile "$modfile")
    [[ -n "$tags" ]] && args+=(-tags "$tags")
    if ! (cd "$here" && go "${args[@]}" "./$pkgdir"); then
      rm -rf "$tmp"
      echo "build.sh: $name: go build failed" >&2
      return 1
    fi
    # Another build.sh may have finished the same hash meanwhile; either copy is the same build.
    mv -T "$tmp" "$dest" 2>/dev/null || rm -rf "$tmp"
  fi
  ln -sfn "../${dest##*/}/$exe" "$out_root/bin/$link"
  local ms=$(( $(now_ms) - start ))
  printf 'build.sh: %-9s %6d ms  %s -> %s (%s bytes)\n' "$name" "$ms" "$out_root/bin/$link" "$dest/$exe" \
    "$(stat -c %s "$dest/$exe")"
}

targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=("${all[@]}")
total_start="$(now_ms)"
for t in "${targets[@]}"; do
  build_one "$t"
done
echo "build.sh: done in $(( $(now_ms) - total_start )) ms (go $go_version, cache $out_root)"
