#!/usr/bin/env bash
# Builds a real kube-apiserver and etcd from the Go module proxy (tools module in this directory)
# into a content-addressed cache outside the repo, and points stable symlinks at them:
#
#   $OCM_TESTBIN_DIR/kube-<k8s version>-<hash>/{kube-apiserver,etcd}
#   $OCM_TESTBIN_DIR/bin/kube-apiserver -> ../kube-.../kube-apiserver
#   $OCM_TESTBIN_DIR/bin/etcd           -> ../kube-.../etcd
#   $OCM_TESTBIN_DIR/bin/ocm-crds/      -> directory of symlinks to OCM API CRD files in the Go
#                                          module cache (open-cluster-management.io/api, ocm-api/go.mod)
#
# OCM_TESTBIN_DIR defaults to /var/tmp/ocm-conductor-testbins. <hash> covers go.mod, go.sum, this
# script and the Go toolchain version, so a warm run (binaries present) only refreshes the
# symlinks and takes about a second. GO_BUILD_P (default 2) bounds parallel compile jobs and with
# them peak memory. See README.md for measured costs.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
testbin_dir=${OCM_TESTBIN_DIR:-/var/tmp/ocm-conductor-testbins}
build_p=${GO_BUILD_P:-2}

log() { printf '[kube-build] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v go >/dev/null || die "go is not on PATH"
command -v sha256sum >/dev/null || die "sha256sum is not on PATH"

# Versions straight from the committed go.mod (no `go` invocation needed on the warm path).
kube_version=$(awk '$1=="k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' "$here/go.mod")
etcd_version=$(awk '$1=="go.etcd.io/etcd/server/v3" && $2 ~ /^v/ {print $2; exit}' "$here/go.mod")
[[ "$kube_version" =~ ^v1\.([0-9]+)\.[0-9]+$ ]] || die "cannot read k8s.io/kubernetes version from go.mod"
kube_minor=${BASH_REMATCH[1]}
[[ -n "$etcd_version" ]] || die "cannot read go.etcd.io/etcd/server/v3 version from go.mod"

go_version=$(go env GOVERSION GOOS GOARCH | paste -sd/)
hash=$( { cat "$here/go.mod" "$here/go.sum" "$here/build.sh"; printf '%s\n' "$go_version"; } \
  | sha256sum | cut -c1-16)
dest="$testbin_dir/kube-${kube_version}-${hash}"

mkdir -p "$testbin_dir/bin"
# One builder at a time per cache directory (a second caller waits, then finds the binaries).
exec 9>"$testbin_dir/.build.lock"
if command -v flock >/dev/null; then flock 9; fi

if [[ -x "$dest/kube-apiserver" && -x "$dest/etcd" ]]; then
  log "cached: $dest"
else
  tmp="$dest.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  cd "$here"
  export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=readonly"
  tags=selinux,notest,grpcnotrace
  ldflags_kube="-s -w -X k8s.io/component-base/version.gitVersion=${kube_version}"
  ldflags_kube+=" -X k8s.io/component-base/version.gitMajor=1"
  ldflags_kube+=" -X k8s.io/component-base/version.gitMinor=${kube_minor}"
  ldflags_kube+=" -X k8s.io/component-base/version.gitTreeState=clean"
  log "building kube-apiserver ${kube_version} + etcd ${etcd_version} (-p ${build_p}) into $dest"
  log "a cold build (empty Go caches) takes many minutes; README.md has measured times"
  start=$SECONDS
  go build -p "$build_p" -trimpath -tags "$tags" -ldflags "$ldflags_kube" \
    -o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
  log "kube-apiserver built in $((SECONDS - start))s"
  start=$SECONDS
  go build -p "$build_p" -trimpath -tags "$tags" -ldflags "-s -w" \
    -o "$tmp/etcd" go.etcd.io/etcd/server/v3
  log "etcd ${etcd_version} built in $((SECONDS - start))s"
  "$tmp/kube-apiserver" --version >&2
  "$tmp/etcd" --version >&2
  rm -rf "$dest"
  mv "$tmp" "$dest"
  trap - EXIT
fi

# Stable names used by the TypeScript harness (test/harness/src/control-plane.ts).
ln -sfn "../$(basename "$dest")/kube-apiserver" "$testbin_dir/bin/kube-apiserver"
ln -sfn "../$(basename "$dest")/etcd" "$testbin_dir/bin/etcd"

# OCM API CRDs: resolve the module directory of the pinned open-cluster-management.io/api.
api_dir=$(cd "$here/ocm-api" && go mod download open-cluster-management.io/api \
  && go list -m -f '{{.Dir}}' open-cluster-management.io/api)
[[ -n "$api_dir" && -d "$api_dir" ]] || die "cannot resolve open-cluster-management.io/api module directory"
crd_files=(
  cluster/v1/0000_00_clusters.open-cluster-management.io_managedclusters.crd.yaml
  cluster/v1beta2/0000_00_clusters.open-cluster-management.io_managedclustersets.crd.yaml
  cluster/v1beta2/0000_01_clusters.open-cluster-management.io_managedclustersetbindings.crd.yaml
  work/v1/0000_00_work.open-cluster-management.io_manifestworks.crd.yaml
  work/v1/0000_01_work.open-cluster-management.io_appliedmanifestworks.crd.yaml
  addon/v1beta1/0000_00_addon.open-cluster-management.io_clustermanagementaddons.crd.yaml
  addon/v1beta1/0000_01_addon.open-cluster-management.io_managedclusteraddons.crd.yaml
)
crds_new="$testbin_dir/bin/.ocm-crds.$$"
rm -rf "$crds_new"
mkdir -p "$crds_new"
for f in "${crd_files[@]}"; do
  [[ -f "$api_dir/$f" ]] || die "CRD file missing in $api_dir: $f"
  ln -s "$api_dir/$f" "$crds_new/$(basename "$f")"
done
rm -rf "$testbin_dir/bin/ocm-crds"
mv "$crds_new" "$testbin_dir/bin/ocm-crds"

log "ready: $testbin_dir/bin/{kube-apiserver,etcd,ocm-crds} (from $(basename "$dest"), CRDs from $api_dir)"
