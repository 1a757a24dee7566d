import { defineConfig } from 'vite';

/*
 * The portal's browser front end. Built into web/dist, which the portal serves under a strict
 * Content-Security-Policy (no inline script or style): so no inlined assets or modulepreload
 * polyfill, only files served from 'self'.
 */
export default defineConfig({
  base: '/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: true,
  },
});
