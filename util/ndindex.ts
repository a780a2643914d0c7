/** Index arithmetic on C-order (row-major) arrays, shared by error messages and comparisons. */

/** Flat index → multi-index in a C-order array of `shape` (a zero-length dimension gives 0). */
export function unravel(flat: number, shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    out[d] = shape[d] ? flat % shape[d] : 0;
    flat = shape[d] ? Math.floor(flat / shape[d]) : 0;
  }
  return out;
}

/** Multi-index → flat index in a C-order array of `shape` (the inverse of unravel). */
export function ravel(index: readonly number[], shape: readonly number[]): number {
  return index.reduce((flat, i, d) => flat * shape[d] + i, 0);
}
