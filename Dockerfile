# A container image of hookbox: build the release binary, then copy it into a slim runtime.
#   docker build -t hookbox .
#   docker run --rm -p 8001:8001 hookbox --cbhost host.docker.internal --cbport 8000 -r TOKEN
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY static ./static
COPY docs ./docs
# jemalloc's compiled-in options (.cargo/config.toml).
COPY .cargo ./.cargo
RUN cargo build --release --locked --bin hookbox

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home hookbox
COPY --from=build /src/target/release/hookbox /usr/local/bin/hookbox
USER hookbox
EXPOSE 8001
ENTRYPOINT ["hookbox", "-i", "0.0.0.0", "-p", "8001"]
