# One image, both programs: /vipcast-controller and /vipcast-speaker (and the kubectl plugin,
# /kubectl-vipcast). The chart picks the program with the container's command. The build is hack/image-binaries.sh, the same script
# as `make image-binaries`.
FROM golang:1.26.8 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY controller/ controller/
COPY speaker/ speaker/
COPY kubectl-vipcast/ kubectl-vipcast/
COPY internal/ internal/
COPY hack/image-binaries.sh hack/
RUN hack/image-binaries.sh /out

# distroless static: no shell, no package manager; runs as nonroot (65532) unless the pod
# says otherwise (the speaker needs root's NET_RAW for raw sockets).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/vipcast-controller /out/vipcast-speaker /out/kubectl-vipcast /
USER 65532:65532
ENTRYPOINT ["/vipcast-controller"]
