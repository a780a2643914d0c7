/**
 * The joins behind `e5 merge`: the parts' rows in global input order, written as one file of the
 * parts' format. Blocks are dealt round-robin (block b in part b mod N), so the output is walked
 * block by block, each part read front to back; every row is checked to be the one expected there.
 * The output is an AtomicFile: never renamed over a file that appeared meanwhile unless `replace`
 * (--force). Each join yields to the event loop between blocks, so Ctrl-C and SIGTERM are answered
 * (and the temp file removed) during a long merge.
 */
import * as fs from 'fs';
import * as readline from 'readline';
import { SafetensorsFile, writeSafetensorsTo } from '../index';
import { InputDataError } from './errors';
import { NpyRowWriter, readNpyHeader } from './npy';
import { AtomicFile } from './output';
import type { ShardManifest } from './shard-manifest';

/** A shard's data file and its checked sidecar. */
export interface Part {
  file: string;
  m: ShardManifest;
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Global input order: block b of every shard's ranges, b = 0, 1, ... across shards round-robin. */
function* blocks(parts: Part[]): Generator<{ part: number; start: number; end: number }> {
  const nBlocks = Math.ceil(parts[0].m.input.count / parts[0].m.shard.block_size);
  const N = parts.length;
  for (let b = 0; b < nBlocks; b++) {
    const [start, end] = parts[b % N].m.ranges[Math.floor(b / N)];
    yield { part: b % N, start, end };
  }
}

export async function joinJsonl(parts: Part[], output: string, replace: boolean): Promise<void> {
  const readers = parts.map((p) => {
    const rl = readline.createInterface({ input: fs.createReadStream(p.file), crlfDelay: Infinity });
    return { rl, lines: rl[Symbol.asyncIterator](), line: 0 };
  });
  const out = new AtomicFile(output, { replace });
  try {
    for (const { part, start, end } of blocks(parts)) {
      const rd = readers[part];
      let text = '';
      for (let i = start; i < end; i++) {
        const next = await rd.lines.next();
        rd.line++;
        const where = `${parts[part].file}:${rd.line}`;
        if (next.done) throw new InputDataError(`${where}: the file ends, expected the row of input ${i}`);
        const index = /^\{"index":(\d+)[,}]/.exec(next.value)?.[1];
        if (index !== String(i)) throw new InputDataError(`${where}: row ${index === undefined ? 'without an "index"' : `of input ${index}`}, expected input ${i}`);
        text += `${next.value}\n`;
      }
      out.write(text);
    }
    for (const [p, rd] of readers.entries()) {
      if (!(await rd.lines.next()).done) throw new InputDataError(`${parts[p].file}:${rd.line + 1}: more rows than its sidecar lists`);
    }
    out.commit();
  } catch (e) {
    out.abort();
    throw e;
  } finally {
    readers.forEach((rd) => rd.rl.close());
  }
}

export async function joinNpy(parts: Part[], output: string, replace: boolean): Promise<void> {
  const dim = parts[0].m.settings.dim;
  const inputs = parts.map((p) => {
    const h = readNpyHeader(p.file);
    if (h.shape.length !== 2 || h.shape[0] !== p.m.rows || h.shape[1] !== dim) {
      throw new InputDataError(`${p.file}: shape (${h.shape.join(', ')}), its sidecar says (${p.m.rows}, ${dim})`);
    }
    return { fd: fs.openSync(p.file, 'r'), at: h.dataOffset };
  });
  const out = new AtomicFile(output, { replace });
  try {
    const matrix = new NpyRowWriter(out, dim);
    for (const { part, start, end } of blocks(parts)) {
      await tick();
      const src = inputs[part];
      const rows = new Float32Array((end - start) * dim);
      const bytes = new Uint8Array(rows.buffer);
      if (fs.readSync(src.fd, bytes, 0, bytes.length, src.at) !== bytes.length) throw new InputDataError(`${parts[part].file}: ends before the rows of inputs ${start}-${end - 1}`);
      src.at += bytes.length;
      for (let r = 0; r < end - start; r++) matrix.append(rows.subarray(r * dim, (r + 1) * dim));
    }
    matrix.finish();
    out.commit();
  } catch (e) {
    out.abort();
    throw e;
  } finally {
    inputs.forEach((i) => fs.closeSync(i.fd));
  }
}

/** Shards are whole matrices in memory (as a safetensors output is anyway); metadata lists are joined in order. */
export async function joinSafetensors(parts: Part[], output: string, replace: boolean): Promise<void> {
  const out = new AtomicFile(output, { replace });
  try {
    await joinSafetensorsInto(parts, out);
    out.commit();
  } catch (e) {
    out.abort();
    throw e;
  }
}

async function joinSafetensorsInto(parts: Part[], out: AtomicFile): Promise<void> {
  const dim = parts[0].m.settings.dim;
  const loaded = [];
  for (const p of parts) {
    await tick();
    loaded.push(loadSafetensorsPart(p, dim));
  }
  const total = parts[0].m.input.count;
  const data = new Float32Array(total * dim);
  const nTokens: number[] = [], truncated: boolean[] = [], ids: Array<string | number | null> = [];
  for (const { part, start, end } of blocks(parts)) {
    const src = loaded[part];
    data.set(src.data.subarray(src.at * dim, (src.at + end - start) * dim), start * dim);
    for (let r = src.at; r < src.at + end - start; r++) {
      nTokens.push(src.nTokens[r]);
      truncated.push(src.truncated[r]);
      ids.push(src.ids?.[r] ?? null);
    }
    src.at += end - start;
  }
  const { ids: _ids, ...base } = loaded[0].metadata;
  const metadata: Record<string, string> = {
    ...base,
    n_tokens: JSON.stringify(nTokens),
    truncated: JSON.stringify(truncated),
    ...(ids.some((x) => x !== null) ? { ids: JSON.stringify(ids) } : {}),
  };
  writeSafetensorsTo(out.target, { embeddings: { dtype: 'F32', shape: [total, dim], data } }, metadata, (bytes) => out.write(bytes));
}

/** A safetensors shard's matrix and metadata lists, checked against its sidecar. */
function loadSafetensorsPart(p: Part, dim: number) {
  const st = SafetensorsFile.open(p.file);
  try {
    const info = st.tensors.get('embeddings');
    if (!info || info.shape.length !== 2 || info.shape[0] !== p.m.rows || info.shape[1] !== dim) {
      throw new InputDataError(`${p.file}: tensor "embeddings" is ${info ? `[${info.shape.join(', ')}]` : 'missing'}, its sidecar says [${p.m.rows}, ${dim}]`);
    }
    const list = <T>(key: string, optional = false): T[] | undefined => {
      const text = st.metadata[key];
      if (text === undefined && optional) return undefined;
      let v: unknown;
      try {
        v = JSON.parse(text ?? 'null');
      } catch {
        // reported below
      }
      if (!Array.isArray(v) || v.length !== p.m.rows) throw new InputDataError(`${p.file}: __metadata__ ${key} is not a list of ${p.m.rows} values`);
      return v as T[];
    };
    return {
      data: st.readF32('embeddings'), metadata: st.metadata, at: 0,
      nTokens: list<number>('n_tokens')!, truncated: list<boolean>('truncated')!, ids: list<string | number | null>('ids', true),
    };
  } finally {
    st.close();
  }
}

