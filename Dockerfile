# Multi-stage build: compile with the Rust toolchain, run on a small non-root image.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# samgate without the `demo` feature: no emulator code in the production binary. The emulator
# binary is built on its own (docker-compose uses it for a local try-out).
RUN cargo build --release --locked --no-default-features --bin samgate \
 && cargo build --release --locked -p ms-emulator --bin ms-emulator \
 && cp target/release/samgate target/release/ms-emulator /usr/local/bin/

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/samgate /usr/local/bin/samgate
COPY --from=build /usr/local/bin/ms-emulator /usr/local/bin/ms-emulator
ENV SAMGATE_LISTEN=0.0.0.0:8080 SAMGATE_LOG_FORMAT=json
EXPOSE 8080
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/samgate"]
CMD ["serve"]
