/** Text formatting for the CLI's reports: aligned tables, short labels, float32 numbers in JSON. */
import * as fs from 'fs';
import * as path from 'path';
import stringWidth from 'string-width';

/** `e5-tfjs 0.1.0`, read from the package.json above this file (works from cli/ and dist/cli/). */
export function toolVersion(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: string; version?: string };
      return `${pkg.name ?? 'e5'} ${pkg.version ?? '?'}`;
    }
    if (path.dirname(dir) === dir) return 'e5 (unknown version)';
  }
}

/** At most `width` terminal columns, with an ellipsis when cut; newlines shown as spaces. */
export function truncateLabel(s: string, width: number): string {
  const flat = s.replace(/\s+/g, ' ');
  if (stringWidth(flat) <= width) return flat;
  let out = '';
  for (const ch of flat) {
    if (out && stringWidth(out + ch) > width - 1) break; // room for the '…'
    out += ch;
  }
  return `${out}…`;
}

/**
 * Rows under a header, columns padded to their widest cell; columns listed in `right` are
 * right-aligned (numbers). Widths are terminal columns (string-width): a CJK character or an
 * emoji takes two, a combining accent none.
 */
export function renderTable(header: string[], rows: string[][], right: ReadonlySet<number> = new Set()): string {
  const len = stringWidth;
  const widths = header.map((h, c) => Math.max(len(h), ...rows.map((r) => len(r[c] ?? ''))));
  const line = (cells: string[]) => cells
    .map((cell, c) => (right.has(c) ? ' '.repeat(widths[c] - len(cell)) + cell : cell + ' '.repeat(widths[c] - len(cell))))
    .join('  ')
    .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** A float32 for JSON with 9 significant digits: always enough to read back the identical float32, and shorter than a double's. */
export function f32(x: number): string {
  if (!Number.isFinite(x)) return 'null';
  return String(Number(x.toPrecision(9)));
}

export function f32Array(a: ArrayLike<number>): string {
  let s = '[';
  for (let i = 0; i < a.length; i++) s += (i ? ',' : '') + f32(a[i]);
  return s + ']';
}

/** A number for a table: fixed digits for moderate values, exponent form for tiny or huge ones. */
export function fmtNumber(x: number, digits = 4): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a >= 1e-3 && a < 1e5 ? x.toFixed(digits) : x.toExponential(2);
}

export function shapeString(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
