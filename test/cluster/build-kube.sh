#!/usr/bin/env bash
# Builds the Kubernetes server binaries and CoreDNS from Go modules into a cache
# keyed by version, so later runs reuse them. Prints the bin directory.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.35.4}
COREDNS_VERSION=${COREDNS_VERSION:-v1.14.7}
CACHE=${DEVBOX_CACHE_DIR:-$HOME/.cache/devbox}
out="$CACHE/kube-$KUBE_VERSION-coredns-$COREDNS_VERSION"
bins=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

complete() {
  for b in "${bins[@]}" coredns; do [ -x "$out/bin/$b" ] || return 1; done
}
if complete; then echo "$out/bin"; exit 0; fi

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
work="$out/src"
mkdir -p "$work" "$out/bin"
cd "$work"

# The kubernetes module points its staging modules at ./staging; pin each to the
# matching v0.Y.Z release instead, as listed in that tag's own go.mod.
gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
staging_version="v0.${KUBE_VERSION#v1.}"
{
  echo "module devbox.local/kubebuild"
  echo
  echo "go $(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/')"
  echo
  echo "require k8s.io/kubernetes $KUBE_VERSION"
  echo
  for b in "${bins[@]}"; do echo "tool k8s.io/kubernetes/cmd/$b"; done
  echo
  grep -E '^\s*k8s.io/[a-z0-9-]+ => \./staging/' "$gomod" |
    awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
} >go.mod
go mod tidy >/dev/null

minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
ldflags="$ldflags -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
for b in "${bins[@]}"; do
  [ -x "$out/bin/$b" ] || go build -trimpath -ldflags "$ldflags" -o "$out/bin/$b" "k8s.io/kubernetes/cmd/$b" >&2
done

if [ ! -x "$out/bin/coredns" ]; then
  GOBIN="$out/bin" go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION" >&2
fi
echo "$out/bin"
