# syntax=docker/dockerfile:1
# brokkr-server: built in the Rust image, run in distroless/cc as the nonroot user
# (uid 65532), with no shell and no package manager at run time. Build from the
# repository's root (the whole workspace is the build context):
#
#   docker build -f examples/kubernetes/docker/server.Dockerfile -t brokkr-server:0.1.0 .
#
# Not built by CI (no Docker engine runs there); the manifests that use it are
# validated by .ci/kubernetes.

# The toolchain the workspace is built and tested with (rust-version is 1.94).
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and the build directory between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p brokkr-server --bin brokkr-server \
    && cp target/release/brokkr-server /brokkr-server

# glibc and libgcc_s are all the binary links (rustls with ring, SQLite bundled).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /brokkr-server /usr/local/bin/brokkr-server
USER 65532:65532
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/brokkr-server"]
CMD ["serve"]
