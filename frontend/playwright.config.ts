import { defineConfig } from '@playwright/test';

// End-to-end: Debian's Chromium (Playwright downloads nothing), the built
// storefront served by `vite preview`, proxying /api to the real api that
// each test starts with the sale it needs (e2e/stack.ts).
export const WEB_PORT = Number(process.env.E2E_WEB_PORT ?? 5174);
export const API_PORT = Number(process.env.E2E_API_PORT ?? 3174);

export default defineConfig({
  testDir: 'e2e',
  workers: 1,
  timeout: 60_000,
  reporter: [['list']],
  outputDir: 'test-results',
  use: {
    baseURL: `http://127.0.0.1:${WEB_PORT}`,
    launchOptions: {
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
    },
  },
  webServer: {
    command: `npx vite preview --host 127.0.0.1 --port ${WEB_PORT} --strictPort`,
    url: `http://127.0.0.1:${WEB_PORT}`,
    env: { API_URL: `http://127.0.0.1:${API_PORT}` },
    reuseExistingServer: false,
    timeout: 30_000,
  },
});
