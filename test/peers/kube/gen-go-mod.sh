#!/usr/bin/env bash
# Regenerates test/peers/kube/go.mod + go.sum (the kube-apiserver/etcd tools module) and
# test/peers/kube/ocm-api/go.mod + go.sum (the module that pins the OCM API CRDs).
#
# Run this only when bumping versions; commit the results. build.sh never runs it.
#
# Why generated: k8s.io/kubernetes requires every staging module (k8s.io/api, k8s.io/apiserver, ...)
# at the fake version v0.0.0 and redirects them to ./staging with replace directives, which are
# ignored when k8s.io/kubernetes is a dependency. We read the exact staging set from the pinned
# release's own go.mod and replace each with its published v0.X.Y tag. The set changes between
# releases (1.36 adds k8s.io/streaming and k8s.io/cri-streaming), so it is never hand-written.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.35.4}
OCM_API_VERSION=${OCM_API_VERSION:-v1.3.0}
STAGING_VERSION="v0.${KUBE_VERSION#v1.}"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"
export GOFLAGS=-mod=mod

rm -f go.mod go.sum
go mod init ocm-conductor.local/test-peers/kube
# Downloading a single module needs no replaces, so this works before go.mod is complete.
kmod=$(go mod download -json "k8s.io/kubernetes@${KUBE_VERSION}" | jq -r .GoMod)

# Keep upstream's language version and GODEBUG defaults so the binary behaves like upstream's.
kgo=$(awk '$1=="go"{print $2; exit}' "$kmod")
go mod edit -go="$kgo"
grep -E '^godebug ' "$kmod" >> go.mod || true

grep -E '^\s+k8s\.io/[a-z0-9.-]+ v0\.0\.0( |$)' "$kmod" \
  | awk '{print $1}' | sort -u \
  | while read -r m; do go mod edit -replace="${m}=${m}@${STAGING_VERSION}"; done

# The etcd server version this Kubernetes release pins (listed as an indirect requirement).
etcd_version=$(awk '$1=="go.etcd.io/etcd/server/v3"{print $2; exit}' "$kmod")
[[ -n "$etcd_version" ]] || { echo "etcd server version not found in $kmod" >&2; exit 1; }

go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@${KUBE_VERSION}"
go get -tool "go.etcd.io/etcd/server/v3@${etcd_version}"
go mod tidy

# Guard: minimal version selection must not have moved etcd or the staging modules.
got_etcd=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
[[ "$got_etcd" == "$etcd_version" ]] || { echo "etcd resolved to $got_etcd, want $etcd_version" >&2; exit 1; }

# The OCM API module lives in its own module (ocm-api/) so its requirements cannot raise any
# dependency of the kube-apiserver build list (e.g. sigs.k8s.io/structured-merge-diff).
mkdir -p ocm-api
(
  cd ocm-api
  rm -f go.mod go.sum
  go mod init ocm-conductor.local/test-peers/kube/ocm-api
  go mod edit -go="$kgo" -require="open-cluster-management.io/api@${OCM_API_VERSION}"
  # No package is imported, so `go mod tidy` would drop the requirement; download records go.sum.
  go mod download open-cluster-management.io/api
)
echo "generated: k8s ${KUBE_VERSION}, staging ${STAGING_VERSION}, etcd ${etcd_version}, ocm api ${OCM_API_VERSION}"
