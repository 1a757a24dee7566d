// Writes the factory image's field table into docs/device.md from factoryImageSchema (built): run
// `npm run docs:device` after changing src/pki/factory-image.ts.
import { readFileSync, writeFileSync } from 'node:fs';
import { format, resolveConfig } from 'prettier';
import { withFactoryImageFields } from '../dist/src/pki/factory-image.js';

const path = 'docs/device.md';
// Formatted as `prettier --check` wants it; test/pki/factory-image.test.ts checks the same way.
const options = { ...(await resolveConfig(path)), filepath: path };
writeFileSync(path, await format(withFactoryImageFields(readFileSync(path, 'utf8')), options));
console.log(`${path}: factory image fields written`);
