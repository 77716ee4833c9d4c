# Airlock with the local gVisor executor. Runs as root inside the container because
# runsc needs it; jobs run as uid 10001 inside gVisor sandboxes.
FROM node:20-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends runsc debootstrap redis-tools \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund
COPY . .
RUN npm run build && bash sandbox-images/build.sh default && npm prune --omit=dev
ENV NODE_ENV=production
EXPOSE 8080
CMD ["node", "dist/bin/airlock-server.js"]
