import { after } from 'node:test';
import { startPostgres, type ThrowawayPostgres } from '../helpers/postgres.js';
import { operatorChangeSuite } from './operator-change-suite.js';

// The same operator change with operator A on PostgreSQL: the transfer's conditional updates, the
// outbox and the registration server's owned statements on the deployment's database.
let postgres: ThrowawayPostgres | undefined;
after(() => postgres?.stop());

operatorChangeSuite('operator change A → B (A on PostgreSQL)', async () => {
  postgres = await startPostgres();
  return { kind: 'postgres', url: postgres.url };
});
