# Sluice's container image: the esbuild bundle (dist/) on Node 24, run as a non-root user.
#
#   docker build -t sluice .            (or: podman build --format docker -t sluice .)
#   docker run --rm -p 8080:8080 sluice
#
# Stages: deps (npm ci) -> build (npm run bundle) -> runtime (Node + dist/ + config/, and of
# node_modules only the Argon2 package: its native binary cannot be bundled). On machines that reach no image registry, BASE points at
# a local stand-in for the official image (scripts/test-image.sh builds one).
ARG BASE=node:24-bookworm-slim

FROM ${BASE} AS deps
WORKDIR /app
# A TLS-intercepting proxy's CA for npm, mounted into the build by whoever needs it
# (scripts/test-image.sh does); empty and harmless elsewhere. Declared in this stage only,
# so it never reaches the final image.
ARG NODE_EXTRA_CA_CERTS=
COPY package.json package-lock.json ./
# --ignore-scripts: the image has its own Node, so the `node` package's preinstall (which
# downloads a second Node binary) is skipped; esbuild works without its postinstall.
RUN npm ci --ignore-scripts --no-audit --no-fund

FROM deps AS build
COPY src ./src
# the bundle's build script (esbuild with a plugin: scripts/bundle.mjs says why)
COPY scripts/bundle.mjs ./scripts/bundle.mjs
RUN npm run bundle

FROM ${BASE} AS runtime
WORKDIR /app
# HOST=0.0.0.0: listen on every interface of the container. On a non-loopback address the
# gateway refuses to start until an API key exists (`sluice keys create ...` against the same
# DATABASE_URL, or keys declared in the config) unless the config says `auth: none`.
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    SLUICE_DATA_DIR=/app/data
COPY --from=build /app/dist ./dist
# API-key hashing (Argon2id) is a native module the bundle loads from node_modules on first use.
COPY --from=deps /app/node_modules/@node-rs ./node_modules/@node-rs
COPY config ./config
# The only writable place: the embedded audit ledger (data/usage.jsonl) when no DATABASE_URL
# is set. Everything else stays read-only for the runtime user (the root filesystem can be
# mounted read-only).
RUN mkdir -p /app/data && chown 1000:1000 /app/data
VOLUME ["/app/data"]
# Numeric, so Kubernetes' runAsNonRoot can verify it (uid 1000 is `node` in the base image).
USER 1000:1000
EXPOSE 8080
# SIGTERM drains: readiness turns 503, new requests get 503, in-flight streams get up to
# timeouts.drain (default 30s) to finish; give `docker stop -t` / the pod's grace period more.
STOPSIGNAL SIGTERM
# No curl in slim images: Node's fetch against the liveness endpoint.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORT||8080}/health/live`).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "/app/dist/main.mjs"]
CMD ["serve"]
