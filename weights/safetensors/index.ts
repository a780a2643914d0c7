// safetensors, read and written by hand (format: https://github.com/huggingface/safetensors#format).
//
//   [u64 LE: N] [N bytes: UTF-8 JSON header, may end in spaces] [data buffer]
//   header = { "__metadata__"?: {string: string},
//              "<tensor>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ... }
//   offsets are relative to the start of the data buffer; the tensors tile it exactly.
//
// Modules: dtypes · header (validation; the JSON is parsed by ../strict-json, which rejects duplicate
// keys) · reader (SafetensorsFile, positioned reads) · half (F16/BF16 conversions) · writer · io.
// Every failure is a SafetensorsError naming the file and the tensor.
//
// F8_E4M3 / F8_E5M2 / U16 / U32 / U64 are valid safetensors dtypes that BERT checkpoints never use: we
// reject them with 'unknown_dtype' (the message says so) rather than half-supporting them.

export { SafetensorsError } from '../errors';
export type { SafetensorsErrorCode } from '../errors';
export { DTYPE_SIZE, isDtype } from './dtypes';
export type { Dtype, TensorData } from './dtypes';
export { compareCodePoints, headerLengthFromPrefix, MAX_HEADER_BYTES, parseHeader } from './header';
export type { ParsedHeader, TensorInfo } from './header';
export { firstNonFinite, nativeReadError, nonFiniteError, SafetensorsFile } from './reader';
export type { F32Source, NativeF32Read, ReadF32Options } from './reader';
export { bf16BitsToF32, f16BitsToF32, f32ToBF16Bits, f32ToF16Bits } from './half';
export { planLayout, writeSafetensors, writeSafetensorsStreaming, writeSafetensorsStreamingTo, writeSafetensorsTo } from './writer';
export type { TensorEntry, TensorToWrite } from './writer';
