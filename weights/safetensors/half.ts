/**
 * F16 / BF16 ⇄ F32 conversions, all exact and bit-level. Up-casts write bit patterns through
 * Uint32Array views (a Float32Array store could canonicalise NaN payloads; F16 NaNs come out quiet
 * like F16C/PyTorch, BF16 bits are kept). Down-casts round to nearest, ties to even, overflow to
 * Inf, and keep a NaN a (quiet) NaN with the sign and the top payload bits.
 */

/** IEEE binary16 bits → binary32 bits (every value is exactly representable). */
function f16ToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >> 10) & 0x1f;
  let mant = h & 0x3ff;
  // Inf; NaN keeps its payload and comes out quiet, as x86 F16C and PyTorch produce it
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant !== 0 ? 0x400000 | (mant << 13) : 0)) >>> 0;
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0; // rebias 15 → 127
  if (mant === 0) return sign >>> 0; // ±0
  // subnormal mant·2^-24: normalise so the leading 1 becomes the implicit bit of a binary32 normal
  let e = 113; // binary32 biased exponent of 2^-14
  while ((mant & 0x400) === 0) {
    mant <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0;
}

let f16Table: Uint32Array | undefined; // 256 KiB, built on first use

export function f16BitsToF32(b: Uint16Array, out: Float32Array = new Float32Array(b.length)): Float32Array {
  if (!f16Table) {
    f16Table = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32Bits(h);
  }
  const table = f16Table;
  const out32 = new Uint32Array(out.buffer, out.byteOffset, b.length);
  for (let i = 0; i < b.length; i++) out32[i] = table[b[i]];
  return out;
}

export function bf16BitsToF32(b: Uint16Array, out: Float32Array = new Float32Array(b.length)): Float32Array {
  const out32 = new Uint32Array(out.buffer, out.byteOffset, b.length);
  for (let i = 0; i < b.length; i++) out32[i] = b[i] << 16;
  return out;
}

/** binary32 bits → binary16 bits, round to nearest even. */
function f32ToF16BitsOne(f: number): number {
  const sign = (f >>> 16) & 0x8000;
  const exp = (f >>> 23) & 0xff;
  const mant = f & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 112; // binary16 biased exponent
  if (e >= 0x1f) return sign | 0x7c00; // >= 2^16: Inf
  if (e <= 0) {
    // binary16 subnormal (or zero): value = m·2^-24 with m = (1.mant)·2^(e+9)
    if (e < -10) return sign; // below 2^-25: rounds to zero (2^-25 itself is a tie, to even 0)
    const m = mant | 0x800000;
    const shift = 14 - e;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    let r = m >>> shift;
    if (rem > half || (rem === half && (r & 1) === 1)) r++; // may carry into the smallest normal, 0x0400
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1) === 1)) r++; // may carry up to 0x7c00 = Inf
  return sign | r;
}

export function f32ToF16Bits(x: Float32Array): Uint16Array {
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = f32ToF16BitsOne(bits[i]);
  return out;
}

/**
 * float32 → bfloat16 bits, rounded to nearest even (into `out` when given). The bits are read as
 * int32 so the arithmetic stays in V8's small integers: read as uint32, a negative float's bits are
 * above 2^31 and every addition went through doubles (4× slower: e5-large's 302M Linear weights
 * took ~5 s to convert at load under precision 'bf16'). f + 0x8000 cannot overflow for a finite f.
 */
export function f32ToBF16Bits(x: Float32Array, out: Uint16Array = new Uint16Array(x.length)): Uint16Array {
  const bits = new Int32Array(x.buffer, x.byteOffset, x.length);
  for (let i = 0; i < x.length; i++) {
    const f = bits[i];
    if ((f & 0x7fffffff) > 0x7f800000) out[i] = (f >>> 16) | 0x40; // NaN: keep sign + top payload, quiet
    else out[i] = (f + 0x7fff + ((f >>> 16) & 1)) >>> 16; // round to nearest even; carries reach Inf
  }
  return out;
}
