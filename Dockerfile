# The `jtp` image: operator, portal and standalone mode in one binary.
# It cannot be built on the development machines of this project (no container engine there);
# build it wherever Docker or Buildah runs:  docker build -t job-trigger-portal:0.1.0 .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p jtp-operator --bin jtp

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/jtp /usr/local/bin/jtp
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/jtp"]
