/** Embeddings from the Hugging Face stack (test/parity/hf_embed.py run by the reference Python). */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { PYTHON } from '../support/python';

export interface HfEmbeddings {
  embeddings: number[][];
  /** The model card's (q @ p.T) * 100, with `queries` > 0. */
  scores?: number[][];
  versions: Record<string, string>;
}

/**
 * `via: 'st'`: SentenceTransformer(model).encode(texts, normalize_embeddings=True);
 * `via: 'card'`: the e5 model card's AutoTokenizer + AutoModel + average_pool + normalize.
 * Files go to `work`; the first `queries` texts are queries for the card's scores.
 */
export function hfEmbed(model: string, texts: string[], via: 'st' | 'card', work: string, queries = 0): HfEmbeddings {
  const textsFile = path.join(work, `texts-${via}.json`), out = path.join(work, `out-${via}.json`);
  fs.writeFileSync(textsFile, JSON.stringify(texts));
  const args = [path.join(__dirname, 'hf_embed.py'), '--model', model, '--texts', textsFile, '--via', via, '--output', out];
  if (queries) args.push('--queries', String(queries));
  execFileSync(PYTHON, args, { stdio: ['ignore', 'ignore', 'inherit'], timeout: 900_000, env: { ...process.env, HF_HUB_OFFLINE: '1' } });
  return JSON.parse(fs.readFileSync(out, 'utf8'));
}
