// Writes docs/protocol.md from the route specs (built): run `npm run docs:protocol` after changing src/protocol.
import { writeFileSync } from 'node:fs';
import { ALL_ROUTES } from '../dist/src/protocol/index.js';
import { renderProtocolDoc } from '../dist/src/protocol/docs.js';

writeFileSync('docs/protocol.md', renderProtocolDoc(ALL_ROUTES));
console.log(`docs/protocol.md: ${ALL_ROUTES.length} routes`);
