import { after } from 'node:test';
import { startPostgres, type ThrowawayPostgres } from '../helpers/postgres.js';
import { reprovisioningSuite } from './reprovisioning-suite.js';

// The same re-provisioning on PostgreSQL: the HSS's subscribers per generation (its UNIQUE on the
// DSIM_ID replaced by one on DSIM_ID and generation), the bounded releases, the retired records.
let postgres: ThrowawayPostgres | undefined;
after(() => postgres?.stop());

reprovisioningSuite('re-provisioning (PostgreSQL)', async () => {
  postgres = await startPostgres();
  return { kind: 'postgres', url: postgres.url };
});
