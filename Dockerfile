# Airlock with the local gVisor executor. Runs as root inside the container because
# runsc needs it; jobs run as uid 10001 inside gVisor sandboxes.
# gVisor: the pinned release, built static from its Go module by the same script
# setup.sh uses (runsc, its sentry sidecar, containerd-shim-runsc-v1).
FROM golang:1.26-bookworm AS gvisor
COPY scripts/build-gvisor.sh /build-gvisor.sh
RUN AIRLOCK_GVISOR_PREFIX=/out bash /build-gvisor.sh

FROM node:20-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends debootstrap redis-tools \
    && rm -rf /var/lib/apt/lists/*
COPY --from=gvisor /out/ /usr/local/bin/
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build && bash sandbox-images/build.sh default && npm prune --omit=dev
ENV NODE_ENV=production
EXPOSE 8080
CMD ["node", "dist/bin/airlock-server.js"]
