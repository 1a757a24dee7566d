import { SimcredError } from '../errors/index.js';
import { dsimId as dsimIdField, httpsUrl } from '../protocol/fields.js';

/** One line of an uploaded device list: a device, or why the line is refused. */
export type DeviceRow =
  | { line: number; dsimId: string; registrationServer: string | undefined }
  | { line: number; dsimId?: string; code: 'SIMCRED_BAD_REQUEST'; message: string };

export type DeviceListFormat = 'csv' | 'ndjson';

/** Longest line of a device list: a row is ~100 bytes. */
const MAX_LINE_BYTES = 16 * 1024;

/**
 * Reads a device list (CSV with a header naming a `dsim_id` column and optionally a
 * `registration_server` one, or NDJSON `{"dsimId": …}` lines) from a byte stream, one line at a time:
 * a file of any size passes through in constant memory. Each row is checked on its own (a bad
 * DSIM_ID, a wrong number of columns, bytes that are not UTF-8, a line that is not JSON); a file that
 * cannot be read at all (no dsim_id column, a header or first line that is not UTF-8, a line over
 * 16 KiB) is SIMCRED_UPLOAD_INVALID.
 *
 * @example
 *   for await (const row of readDeviceList(request.body, 'csv')) if ('code' in row) reject(row); else keep(row);
 */
export async function* readDeviceList(
  source: AsyncIterable<Buffer | string>,
  format: DeviceListFormat,
): AsyncGenerator<DeviceRow> {
  let columns: { dsimId: number; registrationServer: number; count: number } | undefined;
  for await (const { line, bytes } of byteLines(source)) {
    const text = utf8(bytes);
    if (text === undefined) {
      if (line === 1 || (format === 'csv' && !columns)) {
        throw new SimcredError('SIMCRED_UPLOAD_INVALID', `line ${line}: not UTF-8 text`);
      }
      yield { line, code: 'SIMCRED_BAD_REQUEST', message: `line ${line}: bytes that are not UTF-8` };
      continue;
    }
    const trimmed = (line === 1 ? text.replace(/^\uFEFF/, '') : text).trim();
    if (trimmed === '') continue;
    if (format === 'ndjson') {
      yield ndjsonRow(line, trimmed);
      continue;
    }
    const fields = csvFields(trimmed);
    if (!columns) {
      const names = fields.map((f) => f.trim().toLowerCase());
      const dsimId = names.indexOf('dsim_id');
      if (dsimId < 0) {
        throw new SimcredError(
          'SIMCRED_UPLOAD_INVALID',
          `line ${line}: the CSV header has no dsim_id column (found: ${names.join(', ').slice(0, 200) || 'nothing'})`,
        );
      }
      columns = { dsimId, registrationServer: names.indexOf('registration_server'), count: names.length };
      continue;
    }
    if (fields.length !== columns.count) {
      yield {
        line,
        code: 'SIMCRED_BAD_REQUEST',
        message: `line ${line}: ${fields.length} columns where the header has ${columns.count}`,
      };
      continue;
    }
    const server = columns.registrationServer >= 0 ? fields[columns.registrationServer]!.trim() : '';
    yield checkRow(line, fields[columns.dsimId]!.trim(), server || undefined);
  }
}

function ndjsonRow(line: number, text: string): DeviceRow {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { line, code: 'SIMCRED_BAD_REQUEST', message: `line ${line}: not JSON` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { line, code: 'SIMCRED_BAD_REQUEST', message: `line ${line}: not a JSON object` };
  }
  const { dsimId, registrationServer } = value as { dsimId?: unknown; registrationServer?: unknown };
  if (typeof dsimId !== 'string') {
    return { line, code: 'SIMCRED_BAD_REQUEST', message: `line ${line}: dsimId: missing or not a string` };
  }
  if (registrationServer !== undefined && typeof registrationServer !== 'string') {
    return {
      line,
      dsimId,
      code: 'SIMCRED_BAD_REQUEST',
      message: `line ${line}: registrationServer: not a string`,
    };
  }
  return checkRow(line, dsimId, registrationServer);
}

/** One device's fields checked: a DSIM_ID, and an https registration server if given. */
export function checkRow(line: number, dsimId: string, registrationServer: string | undefined): DeviceRow {
  const id = dsimIdField.safeParse(dsimId);
  if (!id.success) {
    return {
      line,
      dsimId: dsimId.slice(0, 64),
      code: 'SIMCRED_BAD_REQUEST',
      message: `line ${line}: dsim_id: ${id.error.issues[0]?.message ?? 'invalid'}`,
    };
  }
  if (registrationServer !== undefined && !httpsUrl.safeParse(registrationServer).success) {
    return {
      line,
      dsimId,
      code: 'SIMCRED_BAD_REQUEST',
      message: `line ${line}: registration_server: must be an https URL`,
    };
  }
  return { line, dsimId, registrationServer };
}

/** The fields of one CSV line (RFC 4180 quoting; a quoted field does not span lines here). */
export function csvFields(line: string): string[] {
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"' && field.trim() === '') {
      quoted = true;
      field = '';
    } else if (c === ',') {
      fields.push(field);
      field = '';
    } else field += c;
  }
  fields.push(field);
  return fields;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

function utf8(bytes: Buffer): string | undefined {
  try {
    return decoder.decode(bytes);
  } catch {
    return undefined;
  }
}

/** Splits a byte stream at line feeds, keeping each line's bytes (so each can be checked as UTF-8). */
async function* byteLines(
  source: AsyncIterable<Buffer | string>,
): AsyncGenerator<{ line: number; bytes: Buffer }> {
  let pending: Buffer = Buffer.alloc(0);
  let line = 0;
  for await (const chunk of source) {
    pending = Buffer.concat([pending, typeof chunk === 'string' ? Buffer.from(chunk) : chunk]);
    let start = 0;
    let newline: number;
    while ((newline = pending.indexOf(0x0a, start)) >= 0) {
      line++;
      yield { line, bytes: pending.subarray(start, newline) };
      start = newline + 1;
    }
    pending = pending.subarray(start);
    if (pending.length > MAX_LINE_BYTES) {
      throw new SimcredError(
        'SIMCRED_UPLOAD_INVALID',
        `line ${line + 1}: longer than ${MAX_LINE_BYTES} bytes`,
      );
    }
  }
  if (pending.length > 0) yield { line: line + 1, bytes: pending };
}
