// `node --import <this file>` in a server process: counts its public-key operations (see
// crypto-operations.ts) and keeps the running totals in $CRYPTO_OPERATIONS_COUNT_DIR/<pid>.json, written
// after each operation and renamed into place, so a reader never sees half a file. (Not a SIMCRED_
// variable: those are config overrides, and an unknown one stops the process.)
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { countByKind, countEveryOperation, type CountedOperation } from './crypto-operations.js';

const dir = process.env.CRYPTO_OPERATIONS_COUNT_DIR;
if (dir) {
  const operations: CountedOperation[] = [];
  const file = join(dir, `${process.pid}.json`);
  const write = () => {
    writeFileSync(`${file}.tmp`, JSON.stringify(countByKind(operations)));
    renameSync(`${file}.tmp`, file);
  };
  write();
  countEveryOperation((operation) => {
    operations.push(operation);
    write();
  });
}
