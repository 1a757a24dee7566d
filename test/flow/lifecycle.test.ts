import { lifecycleSuite } from './lifecycle-suite.js';

lifecycleSuite('subscription lifecycle at the HSS (SQLite)', () => Promise.resolve(undefined));
