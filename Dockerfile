# A multi-arch image of edgegate: a static binary on an empty base.
#
#   docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7,linux/arm/v6 -t edgegate .
#   docker run -v $PWD/my-edgegate.yaml:/etc/edgegate/edgegate.yaml \
#              -v edgegate-data:/var/lib/edgegate -p 1883:1883 edgegate
#
# The shipped config listens on 127.0.0.1 only, which is useless inside a
# container: mount a config whose listeners bind 0.0.0.0 and that
# authenticates devices, and whose admin port has admin.tokens (see the
# README's security sections and "Admin API"), with buffer.dir under
# /var/lib/edgegate.
#
# The build runs natively on the builder's platform and cross-compiles
# (CGO_ENABLED=0) through make, so the patched ristretto is used.

FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
ARG TARGETOS TARGETARCH TARGETVARIANT
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN ./scripts/patch-ristretto.sh && \
    GOWORK=/src/build/go.work CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    GOARM=$(echo "$TARGETVARIANT" | tr -d v) \
    go build -trimpath -ldflags "$(./scripts/ldflags.sh)" -o /out/edgegate ./cmd/edgegate && \
    mkdir -p /out/data && sed -e 's#dir: ./data/buffer#dir: /var/lib/edgegate/buffer#' configs/edgegate.yaml >/out/edgegate.yaml && \
    cp configs/edgegate.schema.json /out/

FROM scratch
COPY --from=build /out/edgegate /usr/local/bin/edgegate
COPY --from=build /out/edgegate.yaml /out/edgegate.schema.json /etc/edgegate/
COPY --from=build --chown=65532:65532 /out/data /var/lib/edgegate
USER 65532:65532
VOLUME /var/lib/edgegate
WORKDIR /var/lib/edgegate
EXPOSE 1883 8080
ENTRYPOINT ["/usr/local/bin/edgegate"]
CMD ["run", "--config", "/etc/edgegate/edgegate.yaml"]
