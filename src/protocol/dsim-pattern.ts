import { z } from 'zod';

/** A DSIM_ID glob: `*` any run, `?` one character, `[0-7]` / `[ACE]` a class of hex digits. */
export const dsimPattern = z
  .string()
  .min(1)
  .max(64)
  .regex(
    /^(?:[0-9A-Z*?]|\[[0-9A-F-]{1,16}\])+$/,
    'must be a DSIM_ID glob: letters, digits, * ? and [..] classes',
  )
  .describe('DSIM_ID glob, e.g. DSIM00AB* or DSIM[0-7]*');

/**
 * Whether a DSIM_ID matches an enrollment group's pattern (null: every DSIM_ID). The glob is turned
 * into an anchored regular expression of literal characters, `.*`, `.` and character classes only
 * (the schema admits nothing else), so an operator's pattern cannot be a costly expression.
 *
 * @example
 *   matchesDsimPattern('DSIM[0-7]*', 'DSIM3A00000000000001'); // true
 */
export function matchesDsimPattern(pattern: string | null, dsimId: string): boolean {
  if (pattern === null) return true;
  let source = '';
  for (const token of pattern.match(/\[[^\]]*\]|./g) ?? []) {
    source += token === '*' ? '.*' : token === '?' ? '.' : token;
  }
  return new RegExp(`^${source}$`).test(dsimId);
}
