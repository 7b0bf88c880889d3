# syntax=docker/dockerfile:1.7
# inferd's container image: one statically linked binary on an empty base (FROM scratch).
#
#   docker build -t inferd .
#   docker run --rm -p 8080:8080 inferd                          # serves the built-in iris model
#   docker run --rm -p 8080:8080 -v "$PWD/models:/models:ro" inferd \
#       serve --model-repository /models                         # your models, <model>/<version>/model.<ext>
#
# Ports: 8080 HTTP (the seed's /predict, Open Inference Protocol, health), 8081 gRPC,
# 8082 Prometheus /metrics. Runs as uid/gid 65532, needs no writable filesystem.
# No Docker engine runs in CI: tests/k8s/final-stage.sh builds the binary with these flags,
# lays out the final stage with the same script and runs it there with chroot.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
# A static glibc binary (crt-static with an explicit --target, so build scripts and proc
# macros stay dynamic host code). inferd is pure Rust: no C libraries to bring along.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    set -eux; \
    triple="$(uname -m)-unknown-linux-gnu"; \
    RUSTFLAGS="-C target-feature=+crt-static" \
        cargo build --release --locked --target "$triple" -p inferd; \
    scripts/k8s-rootfs.sh "target/$triple/release/inferd" /rootfs

FROM scratch
COPY --from=builder /rootfs/ /
USER 65532:65532
EXPOSE 8080 8081 8082
ENTRYPOINT ["/usr/local/bin/inferd"]
CMD ["serve"]
