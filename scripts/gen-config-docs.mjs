// Writes docs/configuration.md from the config schema (built): run `npm run docs:config` after changing src/config.
import { writeFileSync } from 'node:fs';
import { format, resolveConfig } from 'prettier';
import { configLeaves, renderConfigDoc } from '../dist/src/config/docs.js';

const path = 'docs/configuration.md';
// Formatted as `prettier --check` wants it; test/config-docs.test.ts formats the same way.
const options = { ...(await resolveConfig(path)), filepath: path };
writeFileSync(path, await format(renderConfigDoc(), options));
console.log(`${path}: ${configLeaves().length} fields`);
