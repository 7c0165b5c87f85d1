# Multi-stage build of both services: `--target api` or `--target worker`
# (and `--target dev-idp`, the development identity provider of the compose
# demo: its own image, never in the api's).
# The runtime images are Debian slim with the one binary, run as a non-root user.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
# Patched copies of published crates (vendor/README.md).
COPY vendor vendor
# A workspace member: cargo reads its manifest even when building the others.
COPY loadtest loadtest
COPY migrations migrations
RUN cargo build --release --locked --bin api --bin order-worker --bin dev-idp

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home app
USER 10001
ENV LOG_FORMAT=json

FROM runtime AS api
COPY --from=builder /src/target/release/api /usr/local/bin/api
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=2s CMD curl -fs http://127.0.0.1:3000/api/health || exit 1
ENTRYPOINT ["/usr/local/bin/api"]

FROM runtime AS worker
COPY --from=builder /src/target/release/order-worker /usr/local/bin/order-worker
EXPOSE 9091
ENTRYPOINT ["/usr/local/bin/order-worker"]

FROM runtime AS dev-idp
COPY --from=builder /src/target/release/dev-idp /usr/local/bin/dev-idp
ENV DEV_IDP_HOST=0.0.0.0
EXPOSE 4000
ENTRYPOINT ["/usr/local/bin/dev-idp"]
