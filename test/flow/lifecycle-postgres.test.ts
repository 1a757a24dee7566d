import { after } from 'node:test';
import { startPostgres, type ThrowawayPostgres } from '../helpers/postgres.js';
import { lifecycleSuite } from './lifecycle-suite.js';

// The same lifecycle on PostgreSQL: the HSS's conditional updates, the IMSI reuse's claim and the
// attach feed's migration (its UNIQUE on the IMSI dropped) on the deployment's database.
let postgres: ThrowawayPostgres | undefined;
after(() => postgres?.stop());

lifecycleSuite('subscription lifecycle at the HSS (PostgreSQL)', async () => {
  postgres = await startPostgres();
  return { kind: 'postgres', url: postgres.url };
});
