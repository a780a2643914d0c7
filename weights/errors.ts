// Typed errors for everything under weights/: one class, a machine-readable `code`, and a message that
// always names the file (and the tensor when there is one) so a user can find the broken bytes.

export type SafetensorsErrorCode =
  // opening / reading the file
  | 'not_found' // path does not exist
  | 'not_a_file' // path is a directory or other non-regular file
  | 'io_error' // any other OS error (message carries the errno code)
  | 'truncated' // the file shrank after it was opened (a positioned read came back short)
  | 'closed' // read after close()
  | 'big_endian_host' // safetensors is little-endian; we read with native typed arrays
  // the 8-byte prefix and the JSON header
  | 'too_short' // file < 8 bytes
  | 'header_too_large' // header length > 100 MB (the limit of the reference Rust implementation)
  | 'header_beyond_file' // header length runs past the end of the file
  | 'header_not_utf8'
  | 'header_not_json' // syntax error, or nesting deeper than we accept
  | 'header_not_object' // valid JSON but not an object
  | 'duplicate_key' // the same key twice in one JSON object, at any depth
  // one tensor entry
  | 'bad_entry' // entry is not {dtype, shape, data_offsets} (missing, extra or mistyped field)
  | 'unknown_dtype'
  | 'bad_shape' // not an array of non-negative safe integers
  | 'bad_offsets' // data_offsets not [begin, end] of non-negative safe integers with begin <= end
  | 'size_mismatch' // prod(shape) * dtype size != end - begin
  | 'offsets_out_of_bounds' // end > data buffer length
  // the tensors together
  | 'offsets_overlap'
  | 'offsets_hole'
  | 'trailing_bytes' // data buffer is longer than the tensors cover
  | 'bad_metadata' // __metadata__ is not an object of string -> string
  // reading values
  | 'unknown_tensor'
  | 'wrong_dtype' // e.g. readF32 on an integer tensor
  | 'non_finite' // NaN or +-Inf in a weight (opt out with {allowNonFinite: true})
  // model folders (weights/checkpoint.ts)
  | 'no_weights' // no model.safetensors / index in the folder
  | 'pickle_only' // only pytorch_model.bin / *.pt / *.pth / *.ckpt: refused, pickle can execute code
  | 'bad_index' // model.safetensors.index.json is not {metadata?, weight_map: {tensor: shard}}
  | 'bad_shard_name' // shard is not a plain file name
  | 'missing_shard'
  | 'tensor_not_in_shard' // the index names a shard that does not hold the tensor
  | 'tensor_not_in_index' // a shard holds a tensor the index does not list
  | 'duplicate_tensor'; // one tensor name in two shards

export class SafetensorsError extends Error {
  override readonly name = 'SafetensorsError';
  readonly code: SafetensorsErrorCode;
  readonly file: string;
  readonly tensor?: string;

  constructor(code: SafetensorsErrorCode, file: string, detail: string, tensor?: string, options?: { cause?: unknown }) {
    const where = tensor === undefined ? file : `${file}: tensor ${JSON.stringify(tensor)}`;
    super(`${where}: ${detail} [${code}]`, options);
    this.code = code;
    this.file = file;
    if (tensor !== undefined) this.tensor = tensor;
  }
}
