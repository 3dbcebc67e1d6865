#!/usr/bin/env bash
# Builds the pinned test tools into bin/ from the modules beside this script.
# A tool is rebuilt only when the go.mod/go.sum of its module changed since it was built
# (the stamp bin/.stamp-<name> holds their hash), so a cached bin/ costs nothing. With
# TOOLS_CACHE set, built tools are also kept there and copied from there into a new clone.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${BIN:-$(cd "$here/../.." && pwd)/bin}
mkdir -p "$bin"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false

# name  module-dir  package
tools=(
	"etcd . go.etcd.io/etcd/server/v3"
	"kube-apiserver . k8s.io/kubernetes/cmd/kube-apiserver"
	"kube-controller-manager . k8s.io/kubernetes/cmd/kube-controller-manager"
	"kube-proxy . k8s.io/kubernetes/cmd/kube-proxy"
	"kubectl . k8s.io/kubernetes/cmd/kubectl"
	"helm helm helm.sh/helm/v4/cmd/helm"
	"helm3 helm3 helm.sh/helm/v3/cmd/helm"
	"controller-gen codegen sigs.k8s.io/controller-tools/cmd/controller-gen"
	"gobgp gobgp github.com/osrg/gobgp/v4/cmd/gobgp"
	"gobgpd gobgp github.com/osrg/gobgp/v4/cmd/gobgpd"
	"golangci-lint lint github.com/golangci/golangci-lint/v2/cmd/golangci-lint"
	"metallb-controller metallb go.universe.tf/metallb/controller"
	"metallb-speaker metallb go.universe.tf/metallb/speaker"
)

want=${*:-}
for t in "${tools[@]}"; do
	read -r name dir pkg <<<"$t"
	if [ -n "$want" ] && [[ " $want " != *" $name "* ]]; then continue; fi
	sum=$(cat "$here/$dir/go.mod" "$here/$dir/go.sum" | sha256sum | cut -c1-16)
	if [ -x "$bin/$name" ] && [ "$(cat "$bin/.stamp-$name" 2>/dev/null)" = "$sum" ]; then
		continue
	fi
	if [ -n "${TOOLS_CACHE:-}" ] && [ -x "$TOOLS_CACHE/$name" ] && [ "$(cat "$TOOLS_CACHE/.stamp-$name" 2>/dev/null)" = "$sum" ]; then
		cp "$TOOLS_CACHE/$name" "$bin/$name" && echo "$sum" >"$bin/.stamp-$name"
		continue
	fi
	echo "building $name ($pkg)"
	start=$SECONDS
	(cd "$here/$dir" && go build -trimpath -ldflags='-s -w' -o "$bin/$name" "$pkg")
	echo "$sum" >"$bin/.stamp-$name"
	echo "built $name in $((SECONDS - start))s"
	if [ -n "${TOOLS_CACHE:-}" ]; then
		mkdir -p "$TOOLS_CACHE" && cp "$bin/$name" "$TOOLS_CACHE/$name" && echo "$sum" >"$TOOLS_CACHE/.stamp-$name"
	fi
done
