#!/bin/sh
# Builds the image's programs (the controller, the speaker and the kubectl plugin), static and stripped, into the directory given
# (default bin/image). The Dockerfile runs this script too, so `make image-binaries` builds
# exactly what goes into the image.
set -eu
out=${1:-bin/image}
mkdir -p "$out"
for prog in controller speaker; do
	CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags='-s -w -buildid=' -o "$out/vipcast-$prog" "./$prog"
done
CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags='-s -w -buildid=' -o "$out/kubectl-vipcast" ./kubectl-vipcast
