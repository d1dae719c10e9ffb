# Multi-stage build of a static, non-root image.
# Not built on the project's machines (no container runtime there): a
# starting point to check in your own pipeline.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=0.1.0-dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/jambonz-go/sbc-sip-sidecar/internal/config.Version=${VERSION}" \
      -o /out/sbc-sip-sidecar ./cmd/sbc-sip-sidecar

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sbc-sip-sidecar /usr/local/bin/sbc-sip-sidecar
# SIP (udp/tcp 5060, tls 5061, wss 8443) and HTTP_PORT for /metrics /health /ready.
EXPOSE 5060/udp 5060/tcp 5061/tcp 8443/tcp 3000/tcp
ENV SBC_SOCKET_PATH=/tmp/sbc-sip-sidecar.sock
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/sbc-sip-sidecar"]
