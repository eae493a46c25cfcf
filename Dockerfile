# The `jtp` image: operator, portal and standalone mode in one binary.
# Build it wherever Docker or Buildah runs:  docker build -t job-trigger-portal:0.1.0 .
# Without a container engine, scripts/build-image builds the same image (same entrypoint, paths,
# user and ports) as an OCI layout; keep the two in step.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p jtp-operator --bin jtp

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/jtp /usr/local/bin/jtp
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/jtp"]
