import { defineConfig } from 'vitest/config';
import react from '@vitejs/plugin-react';

// @dyad/protocol is a linked workspace package shipped as built ESM (its dist);
// Vite treats linked packages as source, so zod, its only dependency, is
// pre-bundled explicitly to keep the dev server from discovering it late.
export default defineConfig({
  plugins: [react()],
  optimizeDeps: { include: ['@dyad/protocol', 'zod'] },
  // The nudity worker loads its model with dynamic imports: only ES module workers can split code.
  worker: { format: 'es' },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', sourcemap: true },
  server: { host: '127.0.0.1', port: 5173 },
  test: {
    environment: 'happy-dom',
    include: ['src/**/*.test.{ts,tsx}'],
    restoreMocks: true,
  },
});
