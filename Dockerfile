# syntax=docker/dockerfile:1
# Strata in a container. `docker compose up` runs the whole stack (MinIO, a first pipeline run,
# the API with scheduled runs): see docker-compose.yml. On its own:
#   docker build -t strata .
#   docker run --rm -v "$PWD/lake:/app/lake" strata run
#   docker run --rm -p 8080:8080 -v "$PWD/lake:/app/lake" strata serve --bind 0.0.0.0:8080

# ---- build: dependencies first (cargo-chef), so a source change does not rebuild DataFusion ----
FROM rust:1.95-bookworm AS chef
RUN cargo install cargo-chef --version 0.1.78 --locked
WORKDIR /src

FROM chef AS planner
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=planner /src/recipe.json recipe.json
# Only the dependency tree: this layer stays cached until Cargo.toml or Cargo.lock change.
RUN cargo chef cook --release --locked --recipe-path recipe.json
# build.rs: link options that bring the release binary to 142 MB (BENCHMARKS.md, "The first build").
# askama.toml: where the dashboard's templates are (compiled into the binary).
COPY Cargo.toml Cargo.lock build.rs askama.toml ./
COPY src ./src
RUN cargo build --release --locked --bin strata

# ---- runtime: small, non-root, strata as the entrypoint ----
FROM debian:bookworm-slim AS runtime
# ca-certificates: TLS to S3 and HTTPS sources. Nothing else: the health check is `strata` itself.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 strata \
    && useradd --system --uid 10001 --gid strata --home-dir /app --shell /usr/sbin/nologin strata
WORKDIR /app
COPY --from=build /src/target/release/strata /usr/local/bin/strata
COPY config ./config
COPY sql ./sql
RUN mkdir -p /app/lake /app/raw && chown -R 10001:10001 /app/lake /app/raw
USER 10001:10001
VOLUME ["/app/lake"]
# 8080: strata serve; 50050: strata cluster scheduler; 50051-50052: strata cluster executor.
EXPOSE 8080 50050 50051 50052
# `strata healthcheck` GETs /health on the port of serve.bind (STRATA_SERVE__BIND): no curl needed.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["strata", "healthcheck"]
ENTRYPOINT ["strata"]
CMD ["run"]
