#!/usr/bin/env bash
# Builds Helm (the `helm` command of the Go module helm.sh/helm/v4, pinned by the tools module in
# this directory) and kubectl (./kubectl: the stock command of k8s.io/kubectl, at the version Helm
# depends on) into a content-addressed cache outside the repo, and points stable symlinks at them:
#
#   $OCM_TESTBIN_DIR/helm-<helm version>-<hash>/{helm,kubectl}
#   $OCM_TESTBIN_DIR/bin/helm    -> ../helm-.../helm
#   $OCM_TESTBIN_DIR/bin/kubectl -> ../helm-.../kubectl
#
# Used by test/deploy: helm lint / helm template of the charts under deploy/, and
# deploy/conductor/install.sh (kubectl + helm) against the harness kube-apiserver. OCM_TESTBIN_DIR
# defaults to /var/tmp/ocm-conductor-testbins. <hash> covers go.mod, go.sum, this script,
# kubectl/main.go and the Go toolchain version, so a warm run only refreshes the symlinks.
# GO_BUILD_P (default 2) bounds parallel compile jobs. The go.mod was made with `go get -tool helm.sh/helm/v4/cmd/helm@<version>`
# and `go mod tidy`; every dependency stays at the version Helm's own go.mod names (Helm has no
# replace directives, so no generated replaces are needed, unlike test/peers/kube).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
testbin_dir=${OCM_TESTBIN_DIR:-/var/tmp/ocm-conductor-testbins}
build_p=${GO_BUILD_P:-2}

log() { printf '[helm-build] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v go >/dev/null || die "go is not on PATH"
command -v sha256sum >/dev/null || die "sha256sum is not on PATH"

helm_version=$(awk '$1=="helm.sh/helm/v4" && $2 ~ /^v/ {print $2; exit}' "$here/go.mod")
[[ "$helm_version" =~ ^v4\.[0-9]+\.[0-9]+$ ]] || die "cannot read helm.sh/helm/v4 version from go.mod"

go_version=$(go env GOVERSION GOOS GOARCH | paste -sd/)
hash=$( { cat "$here/go.mod" "$here/go.sum" "$here/build.sh" "$here/kubectl/main.go"; printf '%s\n' "$go_version"; } \
  | sha256sum | cut -c1-16)
dest="$testbin_dir/helm-${helm_version}-${hash}"

mkdir -p "$testbin_dir/bin"
# One builder at a time per cache directory (its own lock, so it does not wait for the kube build).
exec 9>"$testbin_dir/.build-helm.lock"
if command -v flock >/dev/null; then flock 9; fi

if [[ -x "$dest/helm" && -x "$dest/kubectl" ]]; then
  log "cached: $dest"
else
  tmp="$dest.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  cd "$here"
  export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=readonly"
  # The version variables Helm's Makefile sets for a tagged build.
  ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=${helm_version}"
  ldflags+=" -X helm.sh/helm/v4/internal/version.metadata="
  ldflags+=" -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
  log "building helm ${helm_version} (-p ${build_p}) into $dest"
  start=$SECONDS
  go build -p "$build_p" -trimpath -ldflags "$ldflags" -o "$tmp/helm" helm.sh/helm/v4/cmd/helm
  log "helm built in $((SECONDS - start))s"
  kubectl_version=$(go list -m -f '{{.Version}}' k8s.io/kubectl)
  [[ "$kubectl_version" =~ ^v0\.([0-9]+)\.[0-9]+$ ]] || die "cannot read k8s.io/kubectl version"
  ldflags_kubectl="-s -w -X k8s.io/component-base/version.gitVersion=${kubectl_version/v0./v1.}"
  ldflags_kubectl+=" -X k8s.io/component-base/version.gitMajor=1"
  ldflags_kubectl+=" -X k8s.io/component-base/version.gitMinor=${BASH_REMATCH[1]}"
  ldflags_kubectl+=" -X k8s.io/component-base/version.gitTreeState=clean"
  start=$SECONDS
  go build -p "$build_p" -trimpath -ldflags "$ldflags_kubectl" -o "$tmp/kubectl" ./kubectl
  log "kubectl ${kubectl_version/v0./v1.} built in $((SECONDS - start))s"
  "$tmp/kubectl" version --client >&2
  HELM_CONFIG_HOME="$tmp/.config" HELM_CACHE_HOME="$tmp/.cache" HELM_DATA_HOME="$tmp/.data" \
    "$tmp/helm" version >&2
  rm -rf "$tmp/.config" "$tmp/.cache" "$tmp/.data"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  trap - EXIT
fi

# Stable names used by test/deploy.
ln -sfn "../$(basename "$dest")/helm" "$testbin_dir/bin/helm"
ln -sfn "../$(basename "$dest")/kubectl" "$testbin_dir/bin/kubectl"
log "ready: $testbin_dir/bin/{helm,kubectl} (from $(basename "$dest"))"
