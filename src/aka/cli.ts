import type { Command } from 'commander';
import { action, printJsonLine } from '../cli/run.js';
import { SimcredError } from '../errors/index.js';
import { computeOpc, Milenage } from './milenage.js';
import { DEFAULT_IND_BITS, SqnGenerator, splitSqn, sqnToBuffer } from './sqn.js';
import { generateVector, verifyAuts } from './vectors.js';

interface VectorOptions {
  k?: string;
  opc?: string;
  op?: string;
  rand?: string;
  sqn?: string;
  amf?: string;
  auts?: string;
  ind?: string;
  indLen?: string;
  json?: boolean;
}

function argumentError(message: string): SimcredError {
  return new SimcredError('SIMCRED_CLI_ARGUMENT', message);
}

/** Parses a required hex option of exactly `bytes` bytes. */
function hexOption(name: string, value: string | undefined, bytes: number): Buffer {
  if (value === undefined) throw argumentError(`${name} is required (${bytes} bytes of hex)`);
  if (!/^[0-9a-fA-F]*$/.test(value) || value.length !== bytes * 2) {
    throw argumentError(
      `${name} must be ${bytes} bytes as ${bytes * 2} hex digits, got ${JSON.stringify(value)}`,
    );
  }
  return Buffer.from(value, 'hex');
}

/** Parses SQN the way osmo-auc-gen's -s does: decimal, or hex with a 0x prefix; 48 bits at most. */
function sqnOption(value: string): number {
  const n = /^\d{1,15}$/.test(value)
    ? Number(value)
    : /^0x[0-9a-f]{1,12}$/i.test(value)
      ? Number(value)
      : NaN;
  if (!Number.isSafeInteger(n) || n >= 2 ** 48) {
    throw argumentError(
      `--sqn must be a 48-bit number, decimal or 0x-prefixed hex, got ${JSON.stringify(value)}`,
    );
  }
  return n;
}

function intOption(name: string, value: string, min: number, max: number): number {
  if (!/^\d{1,3}$/.test(value) || Number(value) < min || Number(value) > max) {
    throw argumentError(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

/**
 * `simcred aka vector`: Milenage outputs for given inputs (like `osmo-auc-gen -3 -a milenage`), or with
 * --auts, verification of an AUTS, SQN_MS and the vector for the SQN the network continues with
 * (like `osmo-auc-gen -A`).
 */
function runVector(opts: VectorOptions): void {
  const k = hexOption('--k', opts.k, 16);
  if ((opts.opc === undefined) === (opts.op === undefined))
    throw argumentError('give exactly one of --opc and --op');
  const opGiven = opts.op !== undefined;
  const opc = opGiven ? computeOpc(k, hexOption('--op', opts.op, 16)) : hexOption('--opc', opts.opc, 16);
  const rand = hexOption('--rand', opts.rand, 16);
  const amf = hexOption('--amf', opts.amf, 2);
  if ((opts.sqn === undefined) === (opts.auts === undefined))
    throw argumentError('give exactly one of --sqn and --auts');
  const indBits = opts.indLen === undefined ? DEFAULT_IND_BITS : intOption('--ind-len', opts.indLen, 0, 10);
  if (opts.ind !== undefined && opts.auts === undefined) {
    throw argumentError(
      '--ind picks the IND slot of the SQN after --auts; with --sqn the SQN already has its IND',
    );
  }
  const milenage = new Milenage(k, opc);

  let sqn: number;
  let sqnMs: number | undefined;
  if (opts.auts !== undefined) {
    const auts = hexOption('--auts', opts.auts, 14);
    const ind = opts.ind === undefined ? 0 : intOption('--ind', opts.ind, 0, 2 ** indBits - 1);
    sqnMs = verifyAuts({ milenage, rand, auts });
    // A network that knew nothing of this USIM (SEQ_HE = 0) continues from SQN_MS (TS 33.102 §6.3.5).
    const generator = new SqnGenerator({ indBits });
    generator.resync(sqnMs);
    sqn = generator.next(ind);
  } else {
    sqn = sqnOption(opts.sqn!);
  }

  const vector = generateVector({ milenage, sqn, amf, rand });
  const out = milenage.compute(rand, sqnToBuffer(sqn), amf);
  const result: Record<string, string | number> = {};
  if (opGiven) result.opc = opc.toString('hex');
  Object.assign(result, {
    rand: rand.toString('hex'),
    macA: vector.macA.toString('hex'),
    macS: out.macS.toString('hex'),
    res: vector.xres.toString('hex'),
    ck: vector.ck.toString('hex'),
    ik: vector.ik.toString('hex'),
    ak: vector.ak.toString('hex'),
    akStar: out.akStar.toString('hex'),
    autn: vector.autn.toString('hex'),
    sqn,
    ind: splitSqn(sqn, indBits).ind,
  });
  if (sqnMs !== undefined) result.sqnMs = sqnMs;

  if (opts.json) {
    printJsonLine(result);
    return;
  }
  const labels: Record<string, string> = {
    opc: 'OPc',
    rand: 'RAND',
    macA: 'MAC-A',
    macS: 'MAC-S',
    res: 'RES',
    ck: 'CK',
    ik: 'IK',
    ak: 'AK',
    akStar: 'AK*',
    autn: 'AUTN',
    sqn: 'SQN',
    ind: 'IND',
    sqnMs: 'SQN.MS',
  };
  for (const [key, value] of Object.entries(result)) process.stdout.write(`${labels[key]}:\t${value}\n`);
}

/**
 * Adds the `aka` command group: `simcred aka vector`.
 *
 * @example
 *   simcred aka vector --k 465b… --opc cd63… --rand 2355… --sqn 0xff9bb4d0b607 --amf b9b9 --json
 */
export function registerAkaCommands(program: Command): void {
  const aka = program.command('aka').description('Milenage AKA (3GPP TS 35.206, TS 33.102 §6.3) test tools');
  aka
    .command('vector')
    .description(
      'compute MAC-A, MAC-S, RES, CK, IK, AK, AK* and AUTN (like osmo-auc-gen -3 -a milenage); ' +
        'with --auts, verify an AUTS and print SQN_MS and the vector for the next SQN (like osmo-auc-gen -A)',
    )
    .option('--k <hex>', 'subscriber key K, 16 bytes')
    .option('--opc <hex>', 'OPc, 16 bytes')
    .option('--op <hex>', 'OP, 16 bytes (OPc is derived and printed)')
    .option('--rand <hex>', 'RAND, 16 bytes')
    .option('--sqn <n>', 'SQN, decimal or 0x-prefixed hex (48 bits), used as given')
    .option('--amf <hex>', 'AMF, 2 bytes')
    .option('--auts <hex>', 'AUTS to verify, 14 bytes (instead of --sqn)')
    .option('--ind <n>', 'with --auts: IND slot of the next SQN (default 0)')
    .option('--ind-len <bits>', `IND length in bits (default ${DEFAULT_IND_BITS})`)
    .option('--json', 'print one JSON object')
    .action(action((opts: VectorOptions) => runVector(opts)));
}
