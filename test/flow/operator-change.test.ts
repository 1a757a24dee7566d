import { operatorChangeSuite } from './operator-change-suite.js';

// Operator change A → B with both operators' stores in SQLite files (the embedded default).
operatorChangeSuite('operator change A → B', async () => undefined);
