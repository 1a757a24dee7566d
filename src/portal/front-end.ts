import { createReadStream, existsSync, statSync } from 'node:fs';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { SimcredError } from '../errors/index.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.map': 'application/json',
};

/** Shown when web/dist does not exist: no inline style or script, so the CSP holds for it too. */
const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>simcred portal</title></head>
<body><main><h1>simcred portal</h1>
<p>The front end is not built. Run <code>npm run build</code>, then restart the portal.</p>
<p>The API is served under <code>/api/v1</code>; its OpenAPI document is at <a href="/openapi.json">/openapi.json</a>.</p>
</main></body></html>
`;

/**
 * The folder of the built front end: web/dist of the simcred package (found upwards from this module,
 * which runs from dist/src/portal).
 */
export function defaultFrontEndDir(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'src', 'portal'))) {
      return join(dir, 'web', 'dist');
    }
    if (dirname(dir) === dir) return resolve('web', 'dist');
  }
}

/**
 * Serves the built front end: a file of `dir` by its path, and index.html for any other path that is
 * not the API's (the front end routes in the browser). Paths never leave `dir`.
 *
 * @example
 *   mountFrontEnd(app, defaultFrontEndDir(), SECURITY_HEADERS);
 */
export function mountFrontEnd(app: FastifyInstance, dir: string, headers: Record<string, string>): void {
  const root = resolve(dir);
  app.route({
    method: 'GET',
    url: '/*',
    handler: async (request, reply) => {
      let path: string;
      try {
        path = decodeURIComponent(request.url.split('?')[0]!);
      } catch {
        throw new SimcredError('SIMCRED_NOT_FOUND', 'no such page');
      }
      if (path.startsWith('/api/')) {
        throw new SimcredError('SIMCRED_NOT_FOUND', `no route ${request.method} ${path}`);
      }
      reply.headers(headers);
      const index = join(root, 'index.html');
      if (!existsSync(index)) return reply.type('text/html; charset=utf-8').send(NOT_BUILT);
      const file = resolve(root, `.${path}`);
      const inside = file === root || file.startsWith(root + sep);
      const target = inside && existsSync(file) && statSync(file).isFile() ? file : index;
      const hashed = target !== index && /\/assets\//.test(target);
      return (
        reply
          .type(TYPES[extname(target)] ?? 'application/octet-stream')
          // Vite names built assets by their content: cache them; index.html always fresh.
          .header('cache-control', hashed ? 'public, max-age=31536000, immutable' : 'no-cache')
          .send(createReadStream(target))
      );
    },
  });
}
