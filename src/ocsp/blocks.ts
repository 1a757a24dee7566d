/**
 * Schema-free decoding for the OCSP hot paths: asn1js decodes the DER into its blocks (tags, lengths and
 * values are all read by asn1js), and the functions here walk the known structure of a request or
 * response, checking each element's tag, class and form on the way. This replaces asn1-schema's
 * AsnParser for those structures, which decodes the same blocks and then spends about as long again
 * comparing them with a generated schema and mapping them onto objects.
 *
 * The decode goes through asn1-schema's IAsnConvertible hook (AsnParser.parse hands the decoded block
 * to `fromASN`), which uses the asn1js that asn1-schema depends on; the asn1js 4 the project imports
 * directly spends most of its decoding time in `Object.prototype.toString` type checks (2× slower).
 */
import { derViolation } from '../crypto/der.js';
import * as asn1js from 'asn1js';
import { AsnParser } from '@peculiar/asn1-schema';

/** A decoded asn1js block (asn1js 3 objects at run time; only the fields asn1js 3 and 4 share are read). */
export type Block = asn1js.BaseBlock;

/** Thrown for any structure that is not what the schema says; callers turn it into their own error. */
export class StructureError extends Error {}

class RawBlock {
  block?: Block;
  fromASN(asn: Block): this {
    this.block = asn;
    return this;
  }
  toASN(): Block {
    return this.block!;
  }
}

/*
 * parseEmbedded false: asn1js would otherwise also try to decode the contents of every OCTET STRING and
 * BIT STRING as DER (and keep the attempt); every such value here is read as bytes.
 */
const OPTIONS = { berOptions: { parseEmbedded: false } };

/**
 * Decodes the first DER element of `der` (asn1js ignores anything after it; `block.blockLength` says how
 * many bytes it took). Throws StructureError for anything asn1js cannot decode.
 */
export function decodeBlock(der: Uint8Array): Block {
  let block: Block | undefined;
  try {
    block = AsnParser.parse(der, RawBlock, OPTIONS).block;
  } catch (err) {
    throw new StructureError(err instanceof Error ? err.message : String(err));
  }
  if (!block) throw new StructureError('nothing decoded');
  return block;
}

/** decodeBlock, and the input must be exactly one element in strict DER ({@link assertDer}). */
export function decodeWhole(der: Uint8Array): Block {
  assertDer(der);
  const block = decodeBlock(der);
  if (block.blockLength !== der.byteLength) throw new StructureError('trailing data after the element');
  return block;
}

/**
 * X.690 §10–11: `der` is exactly one element in strict DER (src/crypto/der.ts, the same check every
 * certificate from outside passes). asn1js decodes BER and accepts indefinite and padded lengths, so
 * this keeps a BER re-encoding of a request or response out. Throws StructureError.
 *
 * @example
 *   assertDer(Buffer.from('300080', 'hex')); // throws: trailing data
 */
export function assertDer(der: Uint8Array): void {
  const violation = derViolation(der);
  if (violation !== undefined) throw new StructureError(violation);
}

/**
 * Only the identifier and length octets of the element at the start of `der`, decoded by asn1js
 * without touching (or copying) the contents: asn1js is given just the first few octets and reports
 * the header it read (then that the contents are missing, which is expected here). Definite lengths
 * only (DER).
 */
export function decodeHeader(der: Uint8Array): {
  tagClass: number;
  tagNumber: number;
  constructed: boolean;
  headerLength: number;
  contentLength: number;
} {
  const { result } = asn1js.fromBER(der.subarray(0, Math.min(der.byteLength, 6)));
  const id = result.idBlock;
  const len = result.lenBlock;
  if (id.error || len.error || id.blockLength === 0 || len.blockLength === 0 || len.isIndefiniteForm) {
    throw new StructureError('no DER header');
  }
  const headerLength = id.blockLength + len.blockLength;
  if (headerLength + len.length > der.byteLength) throw new StructureError('element longer than its input');
  return {
    tagClass: id.tagClass,
    tagNumber: id.tagNumber,
    constructed: id.isConstructed,
    headerLength,
    contentLength: len.length,
  };
}

export const UNIVERSAL = 1;
export const CONTEXT = 3;
export const TAG = {
  BOOLEAN: 1,
  INTEGER: 2,
  BIT_STRING: 3,
  OCTET_STRING: 4,
  NULL: 5,
  OID: 6,
  ENUMERATED: 10,
  SEQUENCE: 16,
  GENERALIZED_TIME: 24,
} as const;

/** Whether a block has this tag (class, number and, when given, form). */
export function hasTag(block: Block | undefined, tagClass: number, tagNumber: number, constructed?: boolean) {
  return (
    block !== undefined &&
    block.idBlock.tagClass === tagClass &&
    block.idBlock.tagNumber === tagNumber &&
    (constructed === undefined || block.idBlock.isConstructed === constructed)
  );
}

function expect(
  block: Block | undefined,
  tagClass: number,
  tagNumber: number,
  constructed: boolean,
  what: string,
) {
  if (!hasTag(block, tagClass, tagNumber, constructed)) throw new StructureError(`expected ${what}`);
  return block!;
}

/** The elements of a SEQUENCE (or, with tagClass CONTEXT, of a constructed [n] tag). */
export function elements(
  block: Block | undefined,
  what = 'SEQUENCE',
  tagClass = UNIVERSAL,
  tagNumber: number = TAG.SEQUENCE,
): Block[] {
  const b = expect(block, tagClass, tagNumber, true, what);
  return (b as asn1js.Constructed).valueBlock.value as Block[];
}

/** The one element inside an EXPLICIT context tag [n]. */
export function explicit(block: Block | undefined, tagNumber: number, what: string): Block {
  const inner = elements(block, what, CONTEXT, tagNumber);
  if (inner.length !== 1) throw new StructureError(`expected one element in ${what}`);
  return inner[0]!;
}

/** The content octets of a primitive universal element (OCTET STRING, INTEGER …), a view, not a copy. */
export function contentOf(block: Block | undefined, tagNumber: number, what: string): Uint8Array {
  const b = expect(block, UNIVERSAL, tagNumber, false, what);
  return (b as asn1js.OctetString).valueBlock.valueHexView;
}

export function octetString(block: Block | undefined, what: string): Uint8Array {
  return contentOf(block, TAG.OCTET_STRING, what);
}

/** An INTEGER's content octets exactly as encoded (two's complement, as CertID.serialNumber keeps them). */
export function integerOctets(block: Block | undefined, what: string): Uint8Array {
  const octets = contentOf(block, TAG.INTEGER, what);
  if (octets.byteLength === 0) throw new StructureError(`empty ${what}`);
  return octets;
}

export function oid(block: Block | undefined, what: string): string {
  const b = expect(block, UNIVERSAL, TAG.OID, false, what);
  return (b as asn1js.ObjectIdentifier).valueBlock.toString();
}

export function enumerated(block: Block | undefined, what: string): number {
  const b = expect(block, UNIVERSAL, TAG.ENUMERATED, false, what);
  return (b as asn1js.Enumerated).valueBlock.valueDec;
}

export function generalizedTime(block: Block | undefined, what: string): Date {
  const b = expect(block, UNIVERSAL, TAG.GENERALIZED_TIME, false, what);
  const date = (b as asn1js.GeneralizedTime).toDate();
  if (Number.isNaN(date.getTime())) throw new StructureError(`invalid ${what}`);
  return date;
}

/** A BIT STRING's bytes (no unused bits allowed: signatures and keys are whole octets). */
export function bitStringBytes(block: Block | undefined, what: string): Uint8Array {
  const b = expect(block, UNIVERSAL, TAG.BIT_STRING, false, what) as asn1js.BitString;
  if (b.valueBlock.unusedBits !== 0) throw new StructureError(`${what} with unused bits`);
  return b.valueBlock.valueHexView;
}

/** The exact DER of a decoded element (a view into the decoded input). */
export function rawOf(block: Block): Uint8Array {
  return block.valueBeforeDecodeView;
}

/** Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING } */
export function extension(block: Block | undefined): { id: string; critical: boolean; value: Uint8Array } {
  const parts = elements(block, 'Extension');
  let i = 0;
  const id = oid(parts[i++], 'extnID');
  let critical = false;
  if (hasTag(parts[i], UNIVERSAL, TAG.BOOLEAN, false)) {
    critical = (parts[i++] as asn1js.Boolean).valueBlock.value;
  }
  const value = octetString(parts[i++], 'extnValue');
  if (i !== parts.length) throw new StructureError('extra fields in Extension');
  return { id, critical, value };
}

/** Extensions ::= SEQUENCE SIZE (1..MAX) OF Extension */
export function extensions(block: Block | undefined): ReturnType<typeof extension>[] {
  return elements(block, 'Extensions').map(extension);
}
