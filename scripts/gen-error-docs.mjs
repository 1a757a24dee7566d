// Writes docs/errors.md from src/errors/codes.ts (built): run `npm run docs:errors` after adding a code.
import { writeFileSync } from 'node:fs';
import { ERROR_CODES } from '../dist/src/errors/codes.js';

const rows = Object.entries(ERROR_CODES).map(
  ([code, { status, meaning }]) => `| \`${code}\` | ${status} | ${meaning} |`,
);
const text = `# Error codes

Every error simcred reports carries one of these codes, in the JSON body \`{"code", "message"}\` of an HTTP
response or at the end of a CLI's one-line error (\`simcred: error: … (CODE)\`). Codes are never reused
once published. A 503 always comes with \`Retry-After\`. Only errors below 500 (and declared dependency
outages) show their detail; \`SIMCRED_INTERNAL\` never does.

Generated from \`src/errors/codes.ts\` by \`npm run docs:errors\`; a test keeps the two in step.

| code | HTTP status | meaning |
| --- | --- | --- |
${rows.join('\n')}
`;
writeFileSync('docs/errors.md', text);
console.log(`docs/errors.md: ${rows.length} codes`);
