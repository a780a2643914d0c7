/**
 * The part of the WebAssembly JS API the engine uses (engine/backends/wasm/threads.ts).
 * Node has it globally; TypeScript declares it only in lib.dom, which this Node project does not load.
 */
declare namespace WebAssembly {
  class Module {
    constructor(bytes: ArrayBufferView | ArrayBuffer);
  }
  class Instance {
    constructor(module: Module, imports?: Record<string, Record<string, unknown>>);
    readonly exports: Record<string, unknown>;
  }
  class Memory {
    readonly buffer: ArrayBuffer | SharedArrayBuffer;
  }
}
