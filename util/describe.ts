/** Values named in error messages. */

/** A short, safe description of any value for a message (never throws, never huge). */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  switch (typeof v) {
    case 'string': return `'${v.length > 40 ? `${v.slice(0, 40)}…` : v}'`;
    case 'number': case 'boolean': case 'bigint': return String(v);
    case 'undefined': return 'undefined';
    case 'function': return 'a function';
    case 'symbol': return 'a symbol';
    default: return 'an object';
  }
}
