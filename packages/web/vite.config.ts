import { defineConfig } from 'vitest/config';
import type { HtmlTagDescriptor, Plugin } from 'vite';
import react from '@vitejs/plugin-react';
import { VitePWA } from 'vite-plugin-pwa';

/**
 * The head both pages (index.html, admin.html) share, written once: each
 * page keeps only what is its own (title, description, robots).
 */
const SHARED_HEAD: readonly HtmlTagDescriptor[] = [
  { tag: 'meta', attrs: { charset: 'UTF-8' } },
  { tag: 'meta', attrs: { name: 'viewport', content: 'width=device-width, initial-scale=1, viewport-fit=cover' } },
  { tag: 'meta', attrs: { name: 'color-scheme', content: 'light dark' } },
  { tag: 'link', attrs: { rel: 'icon', href: '/favicon.svg', type: 'image/svg+xml' } },
];

function sharedHead(): Plugin {
  return {
    name: 'dyad-shared-head',
    // First in the head: the charset must come within the page's first 1024 bytes.
    transformIndexHtml: () => SHARED_HEAD.map((t) => ({ ...t, injectTo: 'head-prepend' as const })),
  };
}

// @dyad/protocol is a linked workspace package shipped as built ESM (its dist);
// Vite treats linked packages as source, so zod, its only dependency, is
// pre-bundled explicitly to keep the dev server from discovering it late.
export default defineConfig({
  plugins: [
    sharedHead(),
    react(),
    // Installable on a phone: a manifest, and a service worker that keeps the
    // app shell (the built files) for a fast start. It never caches
    // /config.json, the services' answers or sockets: those live on the
    // matching and signalling services or change per deployment, and are
    // always fetched from the network.
    VitePWA({
      registerType: 'autoUpdate',
      injectRegister: 'script-defer',
      includeAssets: ['favicon.svg', 'apple-touch-icon.png'],
      manifest: {
        name: 'Dyad',
        short_name: 'Dyad',
        description: 'Talk to a random stranger by video or text.',
        start_url: '/',
        scope: '/',
        display: 'standalone',
        orientation: 'portrait',
        theme_color: '#0f172a',
        background_color: '#0f172a',
        icons: [
          { src: '/icon-192.png', sizes: '192x192', type: 'image/png' },
          { src: '/icon-512.png', sizes: '512x512', type: 'image/png' },
          { src: '/icon-maskable-512.png', sizes: '512x512', type: 'image/png', purpose: 'maskable' },
        ],
      },
      workbox: {
        globPatterns: ['**/*.{js,css,html,svg,png,webmanifest}'],
        // The nudity classifier (worker, model, weights: megabytes) is fetched
        // only on a video chat's first check, and never where the filter is off.
        globIgnores: ['config.json', '**/*.map', '**/nudity.worker-*.js', '**/model.min-*.js', '**/group*-shard*.js'],
        // Pages open on the cached shell; nothing else on this origin is answered from the cache.
        navigateFallback: '/index.html',
        navigateFallbackDenylist: [/^\/config\.json$/, /^\/healthz$/],
        runtimeCaching: [],
        cleanupOutdatedCaches: true,
      },
    }),
  ],
  optimizeDeps: { include: ['@dyad/protocol', 'zod'] },
  // The nudity worker loads its model with dynamic imports: only ES module workers can split code.
  worker: { format: 'es' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // No source maps: the web role would serve them to anyone (17.5 MB for the
    // nudity worker's alone, some 40 ms of the process to send each time).
    sourcemap: false,
    // The chat client, and the moderation console at /admin (served as admin.html).
    rollupOptions: { input: { main: 'index.html', admin: 'admin.html' } },
  },
  server: { host: '127.0.0.1', port: 5173 },
  test: {
    environment: 'happy-dom',
    include: ['src/**/*.test.{ts,tsx}'],
    restoreMocks: true,
  },
});
