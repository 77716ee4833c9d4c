import { fileURLToPath } from 'node:url'
import preact from '@preact/preset-vite'
import { defineConfig } from 'vite'

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url))

// Built into dist/console, which the API serves at /console/ (api/plugins/console.ts).
export default defineConfig({
  root: here('.'),
  base: '/console/',
  plugins: [preact()],
  resolve: {
    // The SDK reaches for the `ws` package only where there is no WebSocket; a browser has one.
    alias: { ws: here('./src/no-ws.ts') },
  },
  build: {
    outDir: here('../dist/console'),
    emptyOutDir: true,
    // No inline script anywhere: the page's CSP allows only its own files.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    // No source maps: the public port would serve 2.5 MB of them to anyone for 80 bytes asked.
    sourcemap: false,
    chunkSizeWarningLimit: 1500,
  },
})
