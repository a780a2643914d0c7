/**
 * Attention, GELU and LayerNorm in WebAssembly SIMD of our own, working in place on tfjs-wasm's
 * heap.
 *
 * Why: tfjs-wasm sends every batched matmul to a scalar loop (~2 GFLOPS), so attention ran as
 * one batched matmul per row below 32 tokens and as 2·H small XNNPACK matmuls per row above
 * (6,144 calls per 8×128 e5-large forward, each packing its right operand), with a copy of each
 * row's heads, a scale, a mask add and a softmax kernel between them: 5–7% of a forward, the
 * largest part of the engine's overhead over its GEMMs (bench/README.md). Here one call does a
 * row's heads: q·kᵀ, scale and mask, softmax, ·v, each head's output written straight into z.
 * GELU and LayerNorm were JavaScript loops over float64; here they run two float64 lanes at a
 * time, operation for operation as the JavaScript (engine/backends/elementwise.ts), so with the same bits.
 *
 * How: the module is written as WebAssembly text, generated below, and assembled at start-up
 * with wabt. It imports tfjs-wasm's WebAssembly.Memory, so it reads its inputs and writes its
 * outputs where the tensors are; in the threaded build that memory is shared and
 * ./threads.ts runs a share of the work on a worker with its own instance of the module.
 *
 * Attention's arithmetic, per row and head (T tokens, Dh = D/H, Tp = T rounded up to 8):
 *  - kᵀ is copied into [Tp/8, Dh, 8] panels (zero keys past T), v into [Dh/8, T, 8] panels;
 *  - `gemm`, a 4-row × 8-column register tile, computes x·W + bias with each output accumulated
 *    from the bias (here zero) in k order, a rounded multiply then a rounded add — the same
 *    arithmetic as XNNPACK's f32 GEMM, so q·kᵀ and ·v give the bits tfjs-wasm's per-head
 *    matmuls give;
 *  - scores = raw / √Dh + mask (the additive key mask: 0 or the float32 minimum), as HF;
 *  - softmax by row: max, exp(x − max) (Cephes' expf polynomial, ~1 ulp, 0 below −87.3), sum,
 *    divide. Not the bits of tfjs's Softmax (its exp differs in the last place), which is why
 *    the engine's hook path runs these same functions (the exports scores, softmax, headZ) when
 *    a hook wants the scores or the pattern: hooking changes no number.
 */

import * as fs from 'fs';
import * as path from 'path';
import { ERF_FIT } from '../elementwise';

/** k steps per iteration of the GEMM's main loop. */
const UNROLL = 4;
/** Rows per GEMM tile: 4 rows × 8 columns = 8 accumulators, with the weight and x vectors, fit x64's 16 SIMD registers. */
const TILE_ROWS = 4;

/** The module's exports. Pointers are byte offsets into the heap, strides in bytes. */
export interface SimdExports {
  /** A row's attention for heads h0..h1: q, k, v, z point at the row's first token of [N, D] matrices. */
  attention(q: number, k: number, v: number, z: number, D: number, Dh: number, T: number, h0: number, h1: number, mask: number, scale: number, scratch: number): void;
  /** Raw scores of one head: S [T, Tp] (stride Tp) = q_h · k_hᵀ / scale + mask. */
  scores(q: number, k: number, D: number, Dh: number, T: number, mask: number, scale: number, scratch: number, S: number): void;
  /** Softmax over each of `rows` rows of n floats, `stride` bytes apart, in place. */
  softmax(S: number, rows: number, n: number, stride: number): void;
  /** One head's output: z_h [T, Dh] (stride D) = P [T, T] (stride `ps`) · v_h. */
  headZ(P: number, ps: number, v: number, D: number, Dh: number, T: number, scratch: number, z: number): void;
  /** out = GELU(x) for n floats: engine/backends/elementwise.ts geluErfInto's float64 arithmetic, two lanes at a time (the same bits). */
  gelu(x: number, out: number, n: number): void;
  /** LayerNorm of the n / D rows of x into out: engine/backends/elementwise.ts layerNormInto's float64 arithmetic (the same bits). */
  layerNorm(x: number, gamma: number, beta: number, eps: number, D: number, out: number, n: number): void;
}

/** Floats of scratch one thread needs for a row of T tokens (zeros, kᵀ panels, v panels, scores). */
export function attentionScratchFloats(T: number, Dh: number): number {
  const Tp = (T + 7) & ~7;
  return Math.max(Tp, Dh) + Tp * Dh + T * Dh + T * Tp;
}

const get = (name: string) => `(local.get $${name})`;
const set = (name: string, value: string) => `(local.set $${name} ${value})`;
const i32 = (n: number) => `(i32.const ${n})`;
const add = (a: string, b: string) => `(i32.add ${a} ${b})`;
const mul = (a: string, b: string) => `(i32.mul ${a} ${b})`;
const f32x4 = (v: number) => {
  const t = v === Infinity ? 'inf' : v === -Infinity ? '-inf' : String(v);
  return `(v128.const f32x4 ${t} ${t} ${t} ${t})`;
};

/** for (name = from; name < to; name += step) body */
function loop(name: string, from: string, to: string, body: string, step = 1): string {
  return `${set(name, from)}
    (block $${name}_done (loop $${name}_loop
      (br_if $${name}_done (i32.ge_s ${get(name)} ${to}))
      ${body}
      ${set(name, add(get(name), i32(step)))}
      (br $${name}_loop)))`;
}

/** for (; i + 4 <= n; i += 4) body — four elements a step (`i`, `n` name locals; i starts where it is). */
function quadLoop(label: string, i: string, n: string, body: string): string {
  return `(block $${label}_done (loop $${label}
      (br_if $${label}_done (i32.gt_s ${add(get(i), i32(4))} ${get(n)}))
      ${body}
      ${set(i, add(get(i), i32(4)))}
      (br $${label})))`;
}

/** for (; i < n; i++) body — the elements a quadLoop left. */
function tailLoop(label: string, i: string, n: string, body: string): string {
  return `(block $${label}_done (loop $${label}
      (br_if $${label}_done (i32.ge_s ${get(i)} ${get(n)}))
      ${body}
      ${set(i, add(get(i), i32(1)))}
      (br $${label})))`;
}

// ---------------------------------------------------------------- GEMM

function kStep(rows: number, u: number): string {
  const lines = [set('wa', `(v128.load offset=${u * 32} ${get('wp')})`), set('wb', `(v128.load offset=${u * 32 + 16} ${get('wp')})`)];
  for (let r = 0; r < rows; r++) {
    lines.push(
      set('s', `(v128.load32_splat offset=${u * 4} ${get(`x${r}`)})`),
      set(`c${r}a`, `(f32x4.add ${get(`c${r}a`)} (f32x4.mul ${get('s')} ${get('wa')}))`),
      set(`c${r}b`, `(f32x4.add ${get(`c${r}b`)} (f32x4.mul ${get('s')} ${get('wb')}))`),
    );
  }
  return lines.join('\n');
}

function advance(rows: number, k: number): string {
  const xs = Array.from({ length: rows }, (_, r) => set(`x${r}`, add(get(`x${r}`), i32(4 * k))));
  return [...xs, set('wp', add(get('wp'), i32(32 * k))), set('k', add(get('k'), i32(k)))].join('\n');
}

/** Rows m..m+rows of panel p: accumulators from the bias, k in order, stored to out. */
function tile(rows: number): string {
  const r = Array.from({ length: rows }, (_, i) => i);
  return `
    ${set('x0', add(get('x'), mul(get('m'), get('xs'))))}
    ${r.slice(1).map((i) => set(`x${i}`, add(get(`x${i - 1}`), get('xs')))).join('\n')}
    ${r.map((i) => `${set(`c${i}a`, get('ba'))} ${set(`c${i}b`, get('bb'))}`).join('\n')}
    ${set('wp', get('panel'))}
    ${set('k', i32(0))}
    (block $main_done (loop $main
      (br_if $main_done (i32.gt_s ${add(get('k'), i32(UNROLL))} ${get('K')}))
      ${Array.from({ length: UNROLL }, (_, u) => kStep(rows, u)).join('\n')}
      ${advance(rows, UNROLL)}
      (br $main)))
    (block $tail_done (loop $tail
      (br_if $tail_done (i32.ge_s ${get('k')} ${get('K')}))
      ${kStep(rows, 0)}
      ${advance(rows, 1)}
      (br $tail)))
    ${set('o', add(add(get('out'), mul(get('m'), get('os'))), `(i32.shl ${get('p')} ${i32(5)})`))}
    ${r.map((i) => `(v128.store ${get('o')} ${get(`c${i}a`)}) (v128.store offset=16 ${get('o')} ${get(`c${i}b`)}) ${set('o', add(get('o'), get('os')))}`).join('\n')}
    ${set('m', add(get('m'), i32(rows)))}`;
}

/** out[m, 8p+j] (row stride os) = bias[8p+j] + Σk x[m, k] (row stride xs) · panels[p, k, j], m < M, p < P. */
function gemmFunc(): string {
  const rows = Array.from({ length: TILE_ROWS }, (_, i) => i);
  return `(func $gemm (param $x i32) (param $xs i32) (param $M i32) (param $K i32) (param $panels i32) (param $bias i32) (param $out i32) (param $os i32) (param $P i32)
    (local $p i32) (local $m i32) (local $k i32) (local $panel i32) (local $wp i32) (local $o i32)
    ${rows.map((r) => `(local $x${r} i32) (local $c${r}a v128) (local $c${r}b v128)`).join(' ')}
    (local $wa v128) (local $wb v128) (local $s v128) (local $ba v128) (local $bb v128)
    ${loop('p', i32(0), get('P'), `
      ${set('ba', `(v128.load ${add(get('bias'), `(i32.shl ${get('p')} ${i32(5)})`)})`)}
      ${set('bb', `(v128.load offset=16 ${add(get('bias'), `(i32.shl ${get('p')} ${i32(5)})`)})`)}
      ${set('panel', add(get('panels'), mul(get('p'), `(i32.shl ${get('K')} ${i32(5)})`)))}
      ${set('m', i32(0))}
      (block $tiles_done (loop $tiles
        (br_if $tiles_done (i32.gt_s ${add(get('m'), i32(TILE_ROWS))} ${get('M')}))
        ${tile(TILE_ROWS)}
        (br $tiles)))
      (block $rows_done (loop $rows
        (br_if $rows_done (i32.ge_s ${get('m')} ${get('M')}))
        ${tile(1)}
        (br $rows)))`)})`;
}

// ---------------------------------------------------------------- panels

/** kᵀ of one head as [Tp/8, Dh, 8] panels: dst[(s/8·Dh + d)·8 + s%8] = k[s, d] (row stride ks), zero for s ≥ T. */
function packKeysFunc(): string {
  return `(func $packKeys (param $k i32) (param $ks i32) (param $T i32) (param $Dh i32) (param $dst i32)
    (local $s i32) (local $d i32) (local $row i32) (local $o i32) (local $Tp i32)
    ${set('Tp', `(i32.and ${add(get('T'), i32(7))} ${i32(-8)})`)}
    ${loop('s', i32(0), get('Tp'), `
      ${set('row', add(get('k'), mul(get('s'), get('ks'))))}
      ${set('o', add(get('dst'), `(i32.shl ${add(mul(`(i32.shr_u ${get('s')} ${i32(3)})`, mul(get('Dh'), i32(8))), `(i32.and ${get('s')} ${i32(7)})`)} ${i32(2)})`))}
      ${loop('d', i32(0), get('Dh'), `
        (f32.store ${get('o')} (if (result f32) (i32.lt_s ${get('s')} ${get('T')}) (then (f32.load ${add(get('row'), `(i32.shl ${get('d')} ${i32(2)})`)})) (else (f32.const 0))))
        ${set('o', add(get('o'), i32(32)))}`)}`)}
    )`;
}

/** v of one head as [Dh/8, T, 8] panels: dst[(p·T + s)·8 + j] = v[s, 8p + j] (row stride vs). */
function packValuesFunc(): string {
  return `(func $packValues (param $v i32) (param $vs i32) (param $T i32) (param $Dh i32) (param $dst i32)
    (local $p i32) (local $s i32) (local $src i32) (local $o i32)
    ${set('o', get('dst'))}
    ${loop('p', i32(0), `(i32.shr_u ${get('Dh')} ${i32(3)})`, `
      ${set('src', add(get('v'), `(i32.shl ${get('p')} ${i32(5)})`))}
      ${loop('s', i32(0), get('T'), `
        (v128.store ${get('o')} (v128.load ${get('src')}))
        (v128.store offset=16 ${get('o')} (v128.load offset=16 ${get('src')}))
        ${set('src', add(get('src'), get('vs')))}
        ${set('o', add(get('o'), i32(32)))}`)}`)}
    )`;
}

// ---------------------------------------------------------------- scores, softmax

/**
 * exp of the four floats in local `x` (Cephes expf: 2^n · p(r), r = x − n·ln 2), 0 below −87.3
 * (float32's least normal). n = round(x·log2 e) by adding 1.5·2²³ (its low bits are then n as an
 * integer) — wasm's nearest/trunc_sat and NaN-exact min/max each take several x64 instructions.
 */
function exp4(name: string): string {
  const x = get(name);
  const c = (v: number) => f32x4(v);
  const poly = [1.98756915e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1]
    .reduce((acc, k) => (acc === '' ? c(k) : `(f32x4.add (f32x4.mul ${acc} ${get('er')}) ${c(k)})`), '');
  return `(block (result v128)
    ${set('ex', `(f32x4.pmin (f32x4.pmax ${x} ${c(-87.33654)}) ${c(88.0)})`)}
    ${set('et', `(f32x4.add (f32x4.mul ${get('ex')} ${c(1.4426950408889634)}) ${c(12582912)})`)}
    ${set('en', `(f32x4.sub ${get('et')} ${c(12582912)})`)}
    ${set('er', `(f32x4.sub (f32x4.sub ${get('ex')} (f32x4.mul ${get('en')} ${c(0.693359375)})) (f32x4.mul ${get('en')} ${c(-2.12194440e-4)}))`)}
    (v128.bitselect ${f32x4(0)}
      (f32x4.mul
        (f32x4.add (f32x4.add (f32x4.mul ${poly} (f32x4.mul ${get('er')} ${get('er')})) ${get('er')}) ${c(1)})
        (i32x4.shl (i32x4.add (i32x4.sub ${get('et')} (v128.const i32x4 0x4B400000 0x4B400000 0x4B400000 0x4B400000)) (v128.const i32x4 127 127 127 127)) (i32.const 23)))
      (f32x4.lt ${x} ${c(-87.33654)})))`;
}
const EXP_LOCALS = '(local $ex v128) (local $et v128) (local $en v128) (local $er v128) (local $ein v128)';

/** S[t, s] = S[t, s] / scale (+ mask[s] when mask ≠ 0), t < rows, s < n. */
function scaleMaskFunc(): string {
  return `(func $scaleMask (param $S i32) (param $rows i32) (param $n i32) (param $stride i32) (param $mask i32) (param $scale f32)
    (local $t i32) (local $s i32) (local $a i32) (local $v v128) (local $f f32) (local $sc v128)
    ${set('sc', `(f32x4.splat ${get('scale')})`)}
    ${loop('t', i32(0), get('rows'), `
      ${set('s', i32(0))}
      ${quadLoop('vec', 's', 'n', `
        ${set('a', add(add(get('S'), mul(get('t'), get('stride'))), `(i32.shl ${get('s')} ${i32(2)})`))}
        ${set('v', `(f32x4.div (v128.load ${get('a')}) ${get('sc')})`)}
        (if ${get('mask')} (then ${set('v', `(f32x4.add ${get('v')} (v128.load ${add(get('mask'), `(i32.shl ${get('s')} ${i32(2)})`)}))`)}))
        (v128.store ${get('a')} ${get('v')})`)}
      ${tailLoop('one', 's', 'n', `
        ${set('a', add(add(get('S'), mul(get('t'), get('stride'))), `(i32.shl ${get('s')} ${i32(2)})`))}
        ${set('f', `(f32.div (f32.load ${get('a')}) ${get('scale')})`)}
        (if ${get('mask')} (then ${set('f', `(f32.add ${get('f')} (f32.load ${add(get('mask'), `(i32.shl ${get('s')} ${i32(2)})`)}))`)}))
        (f32.store ${get('a')} ${get('f')})`)}`)}
    )`;
}

/** Softmax of each row of n floats in place: max, exp(x − max), sum (4 lanes, then lane by lane, then the tail), divide. */
function softmaxFunc(): string {
  const addr = (s: string) => add(get('row'), `(i32.shl ${s} ${i32(2)})`);
  const vecLoop = (label: string, body: string) => `${set('s', i32(0))} ${quadLoop(label, 's', 'n', body)}`;
  const tail = (label: string, body: string) => tailLoop(label, 's', 'n', body);
  const lanes = (op: string, v: string) => `(${op} (${op} (${op} (f32x4.extract_lane 0 ${v}) (f32x4.extract_lane 1 ${v})) (f32x4.extract_lane 2 ${v})) (f32x4.extract_lane 3 ${v}))`;
  return `(func $softmax (param $S i32) (param $rows i32) (param $n i32) (param $stride i32)
    (local $t i32) (local $s i32) (local $row i32) (local $vm v128) (local $vs v128) (local $e v128) (local $max f32) (local $sum f32) (local $mx v128) (local $f f32)
    ${EXP_LOCALS}
    ${loop('t', i32(0), get('rows'), `
      ${set('row', add(get('S'), mul(get('t'), get('stride'))))}
      ${set('vm', f32x4(-Infinity))}
      ${vecLoop('max4', set('vm', `(f32x4.pmax ${get('vm')} (v128.load ${addr(get('s'))}))`))}
      ${set('max', lanes('f32.max', get('vm')))}
      ${tail('max1', set('max', `(f32.max ${get('max')} (f32.load ${addr(get('s'))}))`))}
      ${set('mx', `(f32x4.splat ${get('max')})`)}
      ${set('vs', f32x4(0))}
      ${vecLoop('exp4', `${set('ein', `(f32x4.sub (v128.load ${addr(get('s'))}) ${get('mx')})`)}
        ${set('e', exp4('ein'))}
        (v128.store ${addr(get('s'))} ${get('e')})
        ${set('vs', `(f32x4.add ${get('vs')} ${get('e')})`)}`)}
      ${set('sum', lanes('f32.add', get('vs')))}
      ${tail('exp1', `${set('ein', `(f32x4.splat (f32.sub (f32.load ${addr(get('s'))}) ${get('max')}))`)}
        ${set('f', `(f32x4.extract_lane 0 ${exp4('ein')})`)}
        (f32.store ${addr(get('s'))} ${get('f')})
        ${set('sum', `(f32.add ${get('sum')} ${get('f')})`)}`)}
      ${set('vs', `(f32x4.splat ${get('sum')})`)}
      ${vecLoop('div4', `(v128.store ${addr(get('s'))} (f32x4.div (v128.load ${addr(get('s'))}) ${get('vs')}))`)}
      ${tail('div1', `(f32.store ${addr(get('s'))} (f32.div (f32.load ${addr(get('s'))}) ${get('sum')}))`)}`)}
    )`;
}

// ---------------------------------------------------------------- a head, a row

/** Scratch layout (floats): zeros [max(Tp, Dh)] | kᵀ panels [Tp·Dh] | v panels [T·Dh] | scores [T·Tp]. */
function scratchLocals(): string {
  return `
    ${set('Tp', `(i32.and ${add(get('T'), i32(7))} ${i32(-8)})`)}
    ${set('zeros', get('scratch'))}
    ${set('kp', add(get('zeros'), `(i32.shl (select ${get('Tp')} ${get('Dh')} (i32.gt_s ${get('Tp')} ${get('Dh')})) ${i32(2)})`))}
    ${set('vp', add(get('kp'), `(i32.shl ${mul(get('Tp'), get('Dh'))} ${i32(2)})`))}
    ${set('sp', add(get('vp'), `(i32.shl ${mul(get('T'), get('Dh'))} ${i32(2)})`))}
    ${loop('i', i32(0), `(select ${get('Tp')} ${get('Dh')} (i32.gt_s ${get('Tp')} ${get('Dh')}))`, `(v128.store ${add(get('zeros'), `(i32.shl ${get('i')} ${i32(2)})`)} ${f32x4(0)})`, 4)}`;
}
const SCRATCH_LOCALS = '(local $Tp i32) (local $zeros i32) (local $kp i32) (local $vp i32) (local $sp i32) (local $i i32)';

function scoresFunc(): string {
  return `(func $scores (export "scores") (param $q i32) (param $k i32) (param $D i32) (param $Dh i32) (param $T i32) (param $mask i32) (param $scale f32) (param $scratch i32) (param $S i32)
    ${SCRATCH_LOCALS}
    ${scratchLocals()}
    (call $packKeys ${get('k')} (i32.shl ${get('D')} ${i32(2)}) ${get('T')} ${get('Dh')} ${get('kp')})
    (call $gemm ${get('q')} (i32.shl ${get('D')} ${i32(2)}) ${get('T')} ${get('Dh')} ${get('kp')} ${get('zeros')} ${get('S')} (i32.shl ${get('Tp')} ${i32(2)}) (i32.shr_u ${get('Tp')} ${i32(3)}))
    (call $scaleMask ${get('S')} ${get('T')} ${get('T')} (i32.shl ${get('Tp')} ${i32(2)}) ${get('mask')} ${get('scale')}))`;
}

function headZFunc(): string {
  return `(func $headZ (export "headZ") (param $P i32) (param $ps i32) (param $v i32) (param $D i32) (param $Dh i32) (param $T i32) (param $scratch i32) (param $z i32)
    ${SCRATCH_LOCALS}
    ${scratchLocals()}
    (call $packValues ${get('v')} (i32.shl ${get('D')} ${i32(2)}) ${get('T')} ${get('Dh')} ${get('vp')})
    (call $gemm ${get('P')} ${get('ps')} ${get('T')} ${get('T')} ${get('vp')} ${get('zeros')} ${get('z')} (i32.shl ${get('D')} ${i32(2)}) (i32.shr_u ${get('Dh')} ${i32(3)})))`;
}

function attentionFunc(): string {
  const head = (p: string) => add(get(p), `(i32.shl ${mul(get('h'), get('Dh'))} ${i32(2)})`);
  return `(func (export "attention") (param $q i32) (param $k i32) (param $v i32) (param $z i32) (param $D i32) (param $Dh i32) (param $T i32) (param $h0 i32) (param $h1 i32) (param $mask i32) (param $scale f32) (param $scratch i32)
    (local $h i32)
    ${SCRATCH_LOCALS}
    ${scratchLocals()}
    ${loop('h', get('h0'), get('h1'), `
      (call $scores ${head('q')} ${head('k')} ${get('D')} ${get('Dh')} ${get('T')} ${get('mask')} ${get('scale')} ${get('scratch')} ${get('sp')})
      (call $softmax ${get('sp')} ${get('T')} ${get('T')} (i32.shl ${get('Tp')} ${i32(2)}))
      (call $headZ ${get('sp')} (i32.shl ${get('Tp')} ${i32(2)}) ${head('v')} ${get('D')} ${get('Dh')} ${get('T')} ${get('scratch')} ${head('z')})`)})`;
}

// ---------------------------------------------------------------- GELU

/**
 * 0.5·v·(1 + erf(v/√2)) in float64 (`t`: f64x2, or f64 for the tail), operation for operation as
 * geluErfInto evaluates it in JavaScript, so the results are the same bits. `v` names a local.
 */
function geluExpr(t: 'f64x2' | 'f64', v: string): string {
  const c = (x: number) => (t === 'f64x2' ? `(v128.const f64x2 ${x} ${x})` : `(f64.const ${x})`);
  const op = (name: string, a: string, b: string) => `(${t}.${name} ${a} ${b})`;
  const z = get(`${t}_z`), u = get(`${t}_u`);
  const horner = (cs: readonly number[]) => cs.slice(0, -1).reduceRight((inner, k) => op('add', c(k), op('mul', z, inner)), c(cs[cs.length - 1])); // k0 + z·(k1 + z·(…))
  const rational = op('div', op('mul', u, horner(ERF_FIT.p)), op('add', c(1), op('mul', z, horner(ERF_FIT.q))));
  const [above, below] = [op('gt', u, c(ERF_FIT.limit)), op('lt', u, c(-ERF_FIT.limit))];
  const erf = t === 'f64x2'
    ? `(v128.bitselect ${c(1)} (v128.bitselect ${c(-1)} ${rational} ${below}) ${above})`
    : `(select ${c(1)} (select ${c(-1)} ${rational} ${below}) ${above})`;
  return `(block (result ${t === 'f64x2' ? 'v128' : 'f64'})
    ${set(`${t}_u`, op('mul', get(v), c(Math.SQRT1_2)))}
    ${set(`${t}_z`, op('mul', u, u))}
    ${op('mul', op('mul', c(0.5), get(v)), op('add', c(1), erf))})`;
}

/** out[i] = GELU(x[i]), i < n: four floats per step (two float64 pairs), then one at a time. */
function geluFunc(): string {
  const at = (p: string) => add(get(p), `(i32.shl ${get('i')} ${i32(2)})`);
  return `(func (export "gelu") (param $x i32) (param $out i32) (param $n i32)
    (local $i i32) (local $a v128) (local $lo v128) (local $hi v128) (local $f64x2_u v128) (local $f64x2_z v128) (local $s f64) (local $f64_u f64) (local $f64_z f64)
    ${set('i', i32(0))}
    ${quadLoop('vec', 'i', 'n', `
      ${set('a', `(v128.load ${at('x')})`)}
      ${set('lo', `(f64x2.promote_low_f32x4 ${get('a')})`)}
      ${set('hi', `(f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 ${get('a')} ${get('a')}))`)}
      ${set('lo', `(f32x4.demote_f64x2_zero ${geluExpr('f64x2', 'lo')})`)}
      ${set('hi', `(f32x4.demote_f64x2_zero ${geluExpr('f64x2', 'hi')})`)}
      (v128.store ${at('out')} (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 ${get('lo')} ${get('hi')}))`)}
    ${tailLoop('one', 'i', 'n', `
      ${set('s', `(f64.promote_f32 (f32.load ${at('x')}))`)}
      (f32.store ${at('out')} (f32.demote_f64 ${geluExpr('f64', 's')}))`)})`;
}

// ---------------------------------------------------------------- LayerNorm

/**
 * layerNormInto's arithmetic: each sum in lanes (s0, s1) and (s2, s3) of two float64 pairs, added
 * as (s0 + s1) + (s2 + s3), then the tail; out = ((x − mean)·inv)·gamma + beta, rounded once.
 */
function layerNormFunc(): string {
  const at = (p: string, i: string) => add(get(p), `(i32.shl ${i} ${i32(2)})`);
  const lo = (v: string) => `(f64x2.promote_low_f32x4 ${v})`;
  const hi = (v: string) => `(f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 ${v} ${v}))`;
  const lanes = `(f64.add (f64.add (f64x2.extract_lane 0 ${get('va')}) (f64x2.extract_lane 1 ${get('va')})) (f64.add (f64x2.extract_lane 0 ${get('vb')}) (f64x2.extract_lane 1 ${get('vb')})))`;
  const quads = (label: string, body: string) => `${set('i', i32(0))} ${quadLoop(label, 'i', 'D', body)}`;
  const tail = (label: string, body: string) => tailLoop(label, 'i', 'D', body);
  const x1 = `(f64.promote_f32 (f32.load ${at('row', get('i'))}))`;
  const norm2 = (part: (v: string) => string) => `(f64x2.add (f64x2.mul (f64x2.mul (f64x2.sub ${part(get('a'))} ${get('m2')}) ${get('inv2')}) ${part(get('g'))}) ${part(get('bt'))})`;
  return `(func (export "layerNorm") (param $x i32) (param $gamma i32) (param $beta i32) (param $eps f64) (param $D i32) (param $out i32) (param $n i32)
    (local $r i32) (local $i i32) (local $row i32) (local $o i32) (local $a v128) (local $g v128) (local $bt v128) (local $va v128) (local $vb v128)
    (local $d v128) (local $m2 v128) (local $inv2 v128) (local $sum f64) (local $mean f64) (local $inv f64) (local $f f64)
    ${loop('r', i32(0), `(i32.div_s ${get('n')} ${get('D')})`, `
      ${set('row', add(get('x'), `(i32.shl ${mul(get('r'), get('D'))} ${i32(2)})`))}
      ${set('o', add(get('out'), `(i32.shl ${mul(get('r'), get('D'))} ${i32(2)})`))}
      ${set('va', '(v128.const f64x2 0 0)')} ${set('vb', '(v128.const f64x2 0 0)')}
      ${quads('sum4', `${set('a', `(v128.load ${at('row', get('i'))})`)}
        ${set('va', `(f64x2.add ${get('va')} ${lo(get('a'))})`)}
        ${set('vb', `(f64x2.add ${get('vb')} ${hi(get('a'))})`)}`)}
      ${set('sum', lanes)}
      ${tail('sum1', set('sum', `(f64.add ${get('sum')} ${x1})`))}
      ${set('mean', `(f64.div ${get('sum')} (f64.convert_i32_s ${get('D')}))`)}
      ${set('m2', `(f64x2.splat ${get('mean')})`)}
      ${set('va', '(v128.const f64x2 0 0)')} ${set('vb', '(v128.const f64x2 0 0)')}
      ${quads('sq4', `${set('a', `(v128.load ${at('row', get('i'))})`)}
        ${set('d', `(f64x2.sub ${lo(get('a'))} ${get('m2')})`)}
        ${set('va', `(f64x2.add ${get('va')} (f64x2.mul ${get('d')} ${get('d')}))`)}
        ${set('d', `(f64x2.sub ${hi(get('a'))} ${get('m2')})`)}
        ${set('vb', `(f64x2.add ${get('vb')} (f64x2.mul ${get('d')} ${get('d')}))`)}`)}
      ${set('sum', lanes)}
      ${tail('sq1', `${set('f', `(f64.sub ${x1} ${get('mean')})`)} ${set('sum', `(f64.add ${get('sum')} (f64.mul ${get('f')} ${get('f')}))`)}`)}
      ${set('inv', `(f64.div (f64.const 1) (f64.sqrt (f64.add (f64.div ${get('sum')} (f64.convert_i32_s ${get('D')})) ${get('eps')})))`)}
      ${set('inv2', `(f64x2.splat ${get('inv')})`)}
      ${quads('norm4', `${set('a', `(v128.load ${at('row', get('i'))})`)}
        ${set('g', `(v128.load ${at('gamma', get('i'))})`)}
        ${set('bt', `(v128.load ${at('beta', get('i'))})`)}
        (v128.store ${at('o', get('i'))} (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (f32x4.demote_f64x2_zero ${norm2(lo)}) (f32x4.demote_f64x2_zero ${norm2(hi)})))`)}
      ${tail('norm1', `(f32.store ${at('o', get('i'))} (f32.demote_f64 (f64.add (f64.mul (f64.mul (f64.sub ${x1} ${get('mean')}) ${get('inv')}) (f64.promote_f32 (f32.load ${at('gamma', get('i'))}))) (f64.promote_f32 (f32.load ${at('beta', get('i'))})))))`)}`)})`;
}

/** The module's text. `shared`: the memory tfjs-wasm's threaded build has (an import must match it). */
export function simdModuleWat(shared: boolean): string {
  return `(module
  (import "env" "memory" (memory 1 ${shared ? '65536 shared' : ''}))
  ${gemmFunc()}
  ${packKeysFunc()}
  ${packValuesFunc()}
  ${scaleMaskFunc()}
  (func (export "softmax") (param $S i32) (param $rows i32) (param $n i32) (param $stride i32) (call $softmax ${get('S')} ${get('rows')} ${get('n')} ${get('stride')}))
  ${softmaxFunc()}
  ${scoresFunc()}
  ${headZFunc()}
  ${attentionFunc()}
  ${geluFunc()}
  ${layerNormFunc()})`;
}

/** The binary the build writes beside the compiled module (devtools/build.ts). */
export function simdBinaryFile(dir: string, shared: boolean): string {
  return path.join(dir, `simd-${shared ? 'shared' : 'unshared'}.wasm`);
}

/**
 * Assemble the module's text into a binary with wabt (a development dependency: ~40 ms, mostly
 * its own start-up). The build does this once; running from the sources does it at start-up.
 */
export async function assembleSimdModule(shared: boolean): Promise<Uint8Array> {
  const wabt = await (require('wabt') as typeof import('wabt'))();
  const parsed = wabt.parseWat('e5-simd.wat', simdModuleWat(shared), { simd: true, threads: shared });
  try {
    parsed.resolveNames(); // (wabt's validate() rejects shared memories whatever the features; V8 validates on compile)
    return parsed.toBinary({}).buffer;
  } finally {
    parsed.destroy();
  }
}

/** The module: the build's binary beside this file when there is one, else assembled now. */
export async function compileSimdModule(shared: boolean): Promise<WebAssembly.Module> {
  const built = simdBinaryFile(__dirname, shared);
  const binary = fs.existsSync(built) ? fs.readFileSync(built) : await assembleSimdModule(shared);
  return new WebAssembly.Module(binary);
}

/** The module's functions on `memory` (tfjs-wasm's WebAssembly.Memory). */
export function instantiateSimd(module: WebAssembly.Module, memory: WebAssembly.Memory): SimdExports {
  return new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as SimdExports;
}
