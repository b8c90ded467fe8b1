# Dyad: one image for every role (ROLES picks them at run time).
#   docker build -t dyad .
#   docker run -p 8000:8000 -p 8001:8001 -p 8080:8080 -e ALLOWED_ORIGINS=http://localhost:8080 dyad
# docker-compose.yml runs the multi-process topology on Redis.

FROM node:20-bookworm-slim AS build
WORKDIR /app
# Manifests first, so the dependency layer is reused while only sources change.
COPY package.json package-lock.json tsconfig.base.json ./
COPY packages/protocol/package.json packages/protocol/
COPY packages/server/package.json packages/server/
COPY packages/web/package.json packages/web/
RUN npm ci --no-audit --no-fund
COPY packages/protocol packages/protocol
COPY packages/server packages/server
COPY packages/web packages/web
RUN npm run build \
  && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    HOST=0.0.0.0
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/packages/protocol/package.json packages/protocol/
COPY --from=build /app/packages/protocol/dist packages/protocol/dist
COPY --from=build /app/packages/server/package.json packages/server/
COPY --from=build /app/packages/server/dist packages/server/dist
COPY --from=build /app/packages/web/dist packages/web/dist
USER node
EXPOSE 8000 8001 8080
# SIGTERM reaches node directly (exec form): sockets close with 1001 and the
# process exits within 5 s, leaving its sessions resumable on the others.
STOPSIGNAL SIGTERM
CMD ["node", "packages/server/dist/main.js"]
