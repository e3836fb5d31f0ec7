# syntax=docker/dockerfile:1
# Strata in a container: `docker build -t strata .` then
# `docker run --rm -v "$PWD/lake:/app/lake" strata run`, and the API:
# `docker run --rm -p 8080:8080 -v "$PWD/lake:/app/lake" strata serve --bind 0.0.0.0:8080`.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked && cp target/release/strata /usr/local/bin/strata

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /app strata
WORKDIR /app
COPY --from=build /usr/local/bin/strata /usr/local/bin/strata
COPY config ./config
COPY sql ./sql
RUN mkdir -p /app/lake && chown -R strata:strata /app
USER strata
VOLUME ["/app/lake"]
EXPOSE 8080
ENTRYPOINT ["strata"]
CMD ["run"]
