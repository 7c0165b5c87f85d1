import { defineConfig } from 'vitest/config';
import react from '@vitejs/plugin-react';

// The storefront calls /api on its own origin; in dev and preview Vite
// proxies it to the api (API_URL, default the api of `make run`).
const api = process.env.API_URL ?? 'http://localhost:3000';
const proxy = { '/api': { target: api, changeOrigin: false } };

export default defineConfig({
  plugins: [react()],
  server: { port: 5173, proxy },
  preview: { port: 5173, proxy },
  test: {
    environment: 'jsdom',
    globals: true,
    include: ['src/**/*.test.{ts,tsx}'],
    setupFiles: ['src/test-setup.ts'],
  },
});
