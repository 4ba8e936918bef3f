# syntax=docker/dockerfile:1.7
# write-api image. Build from the repository root:
#   docker build -f deploy/docker/write-api.Dockerfile -t registry.example.com/wizard-stream/write-api:0.1.0 .

# The Node base of both stages. Only overridden where no registry is reachable (the deployment test
# builds on a local Node 20 image, test/deploy-run.test.ts); the default is the published one.
ARG NODE_IMAGE=node:20.20.2-bookworm-slim

# --- build: install the workspace from the lockfile and bundle the service into two files ---------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/root/.npm \
    npm ci --no-audit --no-fund --ignore-scripts
# main.js (the service), otel.js (the OpenTelemetry preload, a separate bundle so it runs before Fastify
# loads) and, for write-api, PGlite copied as is (it loads its WASM files from its own directory).
RUN node scripts/build-bundles.mjs write-api /out

# --- runtime: Node and the bundle only, as an unprivileged user -----------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000
WORKDIR /app
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --no-create-home --shell /usr/sbin/nologin app
COPY --from=build --chown=root:root /out/ /app/
# Nothing under /app is writable: the image runs with a read-only root filesystem (DATABASE_URL set, so
# the embedded PGlite directory is never used).
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=2s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "--import", "./otel.js", "main.js"]
