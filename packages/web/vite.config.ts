import { defineConfig } from 'vitest/config';
import react from '@vitejs/plugin-react';

// @dyad/protocol is a linked workspace package shipped as built ESM (its dist);
// Vite treats linked packages as source, so zod, its only dependency, is
// pre-bundled explicitly to keep the dev server from discovering it late.
export default defineConfig({
  plugins: [react()],
  optimizeDeps: { include: ['@dyad/protocol', 'zod'] },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
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
