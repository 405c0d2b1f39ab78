# Enlace as a container image: built from source in one stage, run from a small Debian base as a
# user without privileges. Data (the SQLite database, the secret key, the outbox) lives in the
# volume /var/lib/enlace; for PostgreSQL set ENLACE_DATABASE_URL (see compose.yaml).
#
#   docker build -t enlace .
#   docker run -p 8080:8080 -v enlace-data:/var/lib/enlace \
#     -e ENLACE_PUBLIC_URL=https://lists.example.org enlace

FROM rust:1-slim-bookworm AS build
# A C compiler, make and perl build the bundled SQLite, libpq and OpenSSL.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc make perl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin enlace \
 && strip target/release/enlace

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/enlace --shell /usr/sbin/nologin enlace \
 && install -d -m 0700 -o enlace -g enlace /var/lib/enlace
COPY --from=build /src/target/release/enlace /usr/local/bin/enlace
ENV ENLACE_LISTEN=0.0.0.0:8080 \
    ENLACE_DATA_DIR=/var/lib/enlace \
    ENLACE_DATABASE_URL=sqlite:///var/lib/enlace/enlace.db
USER enlace
WORKDIR /var/lib/enlace
VOLUME /var/lib/enlace
EXPOSE 8080
# Ready means the database can be written, not only that the process is up.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/enlace", "healthcheck"]
# SIGTERM lets requests finish and the workers put back what they hold (up to 30 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/enlace"]
CMD ["serve"]
