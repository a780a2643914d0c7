/**
 * PyTorch pickle checkpoints (pytorch_model.bin, model.pt, last.ckpt, ...) are refused everywhere:
 * unpickling can execute arbitrary code. This is the one rule that recognises them by name, for
 * refusing to download them and for saying what a folder or repo holds instead of safetensors.
 */
export const PICKLE_FILE = /\.(bin|pt|pth|ckpt|pkl|pickle)$/i;

/** The names in `names` that are pickle files, in their order. */
export function pickleFiles(names: Iterable<string>): string[] {
  return [...names].filter((n) => PICKLE_FILE.test(n));
}
