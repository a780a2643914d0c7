/**
 * The safetensors element types: byte sizes, the writer's alignment order, and the typed array
 * that holds each one in memory.
 */

export type Dtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const DTYPE_SIZE: Readonly<Record<Dtype, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

// Position in the reference implementation's `Dtype` enum (increasing alignment). The writer orders
// tensors by this rank descending, then by name, exactly like `safetensors.torch.save_file`, so every
// tensor starts at a multiple of its element size.
export const DTYPE_RANK: Readonly<Record<Dtype, number>> = {
  BOOL: 0, U8: 1, I8: 2, I16: 5, F16: 7, BF16: 8, I32: 9, F32: 11, F64: 12, I64: 13,
};

export const RECOGNISED_UNSUPPORTED = new Set(['F8_E4M3', 'F8_E5M2', 'U16', 'U32', 'U64']);

export function isDtype(s: string): s is Dtype {
  return Object.prototype.hasOwnProperty.call(DTYPE_SIZE, s);
}

export type TensorData =
  | Float32Array | Float64Array | Int32Array | Int16Array | Int8Array | Uint8Array | BigInt64Array | Uint16Array;

/** The typed array that holds one element per slot (F16/BF16 as raw bits, BOOL as 0/1 bytes). */
export function allocate(dtype: Dtype, n: number): TensorData {
  switch (dtype) {
    case 'F64': return new Float64Array(n);
    case 'F32': return new Float32Array(n);
    case 'F16': case 'BF16': return new Uint16Array(n);
    case 'I64': return new BigInt64Array(n);
    case 'I32': return new Int32Array(n);
    case 'I16': return new Int16Array(n);
    case 'I8': return new Int8Array(n);
    case 'U8': case 'BOOL': return new Uint8Array(n);
  }
}

export function bytesOf(a: TensorData): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
