import { reprovisioningSuite } from './reprovisioning-suite.js';

reprovisioningSuite('re-provisioning (SQLite)', () => Promise.resolve(undefined));
