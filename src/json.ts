/**
 * Limits on the JSON sluice accepts: data nested deeper than a few hundred levels overflows the
 * stack of whatever recurses over it next (a validator, a serialiser, a renderer), so it is
 * refused up front with a clear error.
 * @module
 */

/** Deepest nesting of arrays and objects a job's data (or a request body) may have. */
export const MAX_DATA_DEPTH = 200;

/**
 * Whether a JSON text has more than `limit` opening brackets (a quick native scan): one with
 * fewer cannot nest deeper than `limit`, and needs no `jsonDepth` walk.
 */
export function hasMoreBrackets(json: string, limit: number): boolean {
  let n = 0;
  for (const ch of ["{", "["]) {
    let i = -1;
    while ((i = json.indexOf(ch, i + 1)) !== -1) if (++n > limit) return true;
  }
  return false;
}

/** The deepest nesting of a JSON text (brackets outside strings). */
export function jsonDepth(json: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // a backslash escapes the next character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) max = Math.max(max, ++depth);
    else if (c === 93 || c === 125) depth--;
  }
  return max;
}
