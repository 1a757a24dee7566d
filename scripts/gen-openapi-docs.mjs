// Writes docs/openapi/<role>.json from the route specs (built): run `npm run docs:openapi` after changing src/protocol.
import { mkdirSync, writeFileSync } from 'node:fs';
import { SERVING_ROLES } from '../dist/src/protocol/index.js';
import { openApiDocument, renderOpenApiFile } from '../dist/src/protocol/openapi.js';

mkdirSync('docs/openapi', { recursive: true });
for (const role of SERVING_ROLES) {
  writeFileSync(`docs/openapi/${role}.json`, renderOpenApiFile(openApiDocument(role)));
  console.log(`docs/openapi/${role}.json: ${Object.keys(openApiDocument(role).paths).length} paths`);
}
