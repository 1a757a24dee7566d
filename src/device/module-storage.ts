import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { lengthPrefixed, utf8 } from '../crypto/index.js';

/** Bytes per slot of a {@link SlottedSealedFile}: room for a progress record holding a package (≤ 64 k). */
export const STATE_SLOT_BYTES = 128 * 1024;
/** Length word, sequence number, IV, then ciphertext ‖ tag. */
const LENGTH_BYTES = 4;
const SEQ_BYTES = 4;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const MAX_RECORD_BYTES = STATE_SLOT_BYTES - LENGTH_BYTES;
const AAD_LABEL = 'simcred/v1/module-state';

/**
 * A record the module rewrites often (SQN state, onboarding progress), kept the way a secure element
 * keeps its non-volatile memory: two slots, written alternately in place, each record sealed with
 * AES-256-GCM under the module's storage key and numbered. The newest record that authenticates wins,
 * so a write torn by a crash can only spoil the slot being written and the previous record stays
 * whole. Writing in place costs no new file, rename or unlink (on ext4 each of those is far dearer
 * than the write itself); the first write creates the file, which is atomic too since an unreadable
 * slot counts as absent.
 *
 * Slot i sits at offset i × STATE_SLOT_BYTES and holds: u32 length of the rest ‖ u32 sequence number
 * ‖ 12-byte IV ‖ ciphertext ‖ 16-byte tag, the AAD being u16‖label ‖ u16‖context ‖ u16‖sequence. A
 * record with sequence n (from 1) lives in slot (n − 1) mod 2, so a new module's first record is at 0.
 *
 * @example
 *   const file = new SlottedSealedFile(join(dir, 'state.bin'), storageKey, `state:${dsimId}`);
 *   file.write('{"usims":…}'); file.read()?.plaintext;
 */
export class SlottedSealedFile {
  /** Sequence number of the newest record (0: none yet). */
  private seq = 0;

  constructor(
    readonly path: string,
    private readonly key: () => Buffer,
    private readonly context: string,
  ) {}

  /** The newest record that authenticates, or undefined when there is none (or no file). */
  read(): string | undefined {
    let fd: number;
    try {
      fd = openSync(this.path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    let newest: { seq: number; plaintext: string } | undefined;
    try {
      const size = fstatSync(fd).size;
      for (let slot = 0; slot < 2; slot++) {
        const record = this.readSlot(fd, size, slot);
        if (record && (!newest || record.seq > newest.seq)) newest = record;
      }
    } finally {
      closeSync(fd);
    }
    this.seq = newest?.seq ?? 0;
    return newest?.plaintext;
  }

  /** Seals `plaintext` as the next record, into the slot that does not hold the newest one. */
  write(plaintext: string): void {
    const seq = this.seq + 1;
    const body = Buffer.from(plaintext, 'utf8');
    const length = SEQ_BYTES + IV_BYTES + body.length + TAG_BYTES;
    if (length > MAX_RECORD_BYTES) throw new Error(`module state record too large (${length} bytes)`);
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key(), iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(this.aad(seq));
    const record = Buffer.concat([
      u32(length),
      u32(seq),
      iv,
      cipher.update(body),
      cipher.final(),
      cipher.getAuthTag(),
    ]);
    const fd = openSync(this.path, constants.O_WRONLY | constants.O_CREAT, 0o600);
    try {
      writeSync(fd, record, 0, record.length, slotOf(seq) * STATE_SLOT_BYTES);
    } finally {
      closeSync(fd);
    }
    this.seq = seq;
  }

  private readSlot(fd: number, size: number, slot: number): { seq: number; plaintext: string } | undefined {
    const offset = slot * STATE_SLOT_BYTES;
    if (offset + LENGTH_BYTES > size) return undefined;
    const head = Buffer.alloc(LENGTH_BYTES);
    readSync(fd, head, 0, LENGTH_BYTES, offset);
    const length = head.readUInt32BE(0);
    if (length < SEQ_BYTES + IV_BYTES + TAG_BYTES || length > MAX_RECORD_BYTES) return undefined;
    if (offset + LENGTH_BYTES + length > size) return undefined;
    const record = Buffer.alloc(length);
    readSync(fd, record, 0, length, offset + LENGTH_BYTES);
    const seq = record.readUInt32BE(0);
    if (seq === 0 || slotOf(seq) !== slot) return undefined;
    try {
      const decipher = createDecipheriv(
        'aes-256-gcm',
        this.key(),
        record.subarray(SEQ_BYTES, SEQ_BYTES + IV_BYTES),
        { authTagLength: TAG_BYTES },
      );
      decipher.setAAD(this.aad(seq));
      decipher.setAuthTag(record.subarray(length - TAG_BYTES));
      const plain = Buffer.concat([
        decipher.update(record.subarray(SEQ_BYTES + IV_BYTES, length - TAG_BYTES)),
        decipher.final(),
      ]);
      return { seq, plaintext: plain.toString('utf8') };
    } catch {
      // A torn or altered slot: the other one holds the state.
      return undefined;
    }
  }

  private aad(seq: number): Buffer {
    return lengthPrefixed(utf8(AAD_LABEL), utf8(this.context), u32(seq));
  }
}

function slotOf(seq: number): number {
  return (seq - 1) % 2;
}

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value >>> 0, 0);
  return b;
}
