// Tokens per second of our BertTokenizer next to Hugging Face's Rust tokenizer (npm `tokenizers`) and
// its pure-JS port (`@huggingface/tokenizers`), on a fixed English corpus and a multilingual one,
// both generated deterministically (no network). Needs ../shared/data/bert-base-uncased.
//
//   npx ts-node --transpile-only bench/tokenizer.ts [--docs N]
//
// Token counts differ on the hostile corpus where @huggingface/tokenizers is not exact.
// Each contender encodes every document with [CLS]/[SEP] (no truncation) after one warm-up pass;
// the best of 3 timed passes is reported. Rust is measured two ways: encodeBatch (its native
// multi-threaded batch path, on every core) and one awaited encode() per document.

import * as fs from 'fs';
import * as path from 'path';
import { BertTokenizer } from '../tokenizer';
import { randomText, rng as fixtureRng } from '../devtools/random-text';
import { mulberry32 as rng } from '../devtools/rng';

const modelDir = path.resolve(__dirname, '..', '..', 'shared', 'data', 'bert-base-uncased');


const ENGLISH_WORDS = (
  'the of and to in a is that for it as was with be by on not he this are or his from at which but have an they you were ' +
  'her she there been one all would when their will more if no out so said what up its about into than them can only other ' +
  'time new some could these two may first then do any like my now over such our man me even most made after also did many ' +
  'before must through back years where much your way well down should because each just those people how too little state ' +
  'good very make world still own see men work long get here between both life being under never day same another know while ' +
  'last might us great old year off come since against go came right used take three embeddings retrieval passage query ' +
  'transformer attention tokenization unbelievable internationalization protein guideline requirement'
).split(' ');

function englishDoc(r: () => number): string {
  const sentences: string[] = [];
  const n = 3 + Math.floor(r() * 6);
  for (let s = 0; s < n; s++) {
    const len = 6 + Math.floor(r() * 18);
    const words: string[] = [];
    for (let i = 0; i < len; i++) {
      let w = ENGLISH_WORDS[Math.floor(r() * ENGLISH_WORDS.length)];
      if (r() < 0.03) w = String(Math.floor(r() * 10000));
      words.push(w);
      if (r() < 0.07 && i < len - 1) words[words.length - 1] += ',';
    }
    words[0] = words[0][0].toUpperCase() + words[0].slice(1);
    sentences.push(words.join(' ') + (r() < 0.85 ? '.' : r() < 0.5 ? '?' : '!'));
  }
  return (r() < 0.5 ? 'passage: ' : 'query: ') + sentences.join(' ');
}

const MULTILINGUAL = [
  'Le café est très chaud, n\'est-ce pas ? Les élèves étudient à la bibliothèque.',
  'Die Straße ist für Fußgänger gesperrt, weil dort gebaut wird.',
  'Москва — столица России, крупнейший город страны.',
  'Η Αθήνα είναι η πρωτεύουσα της Ελλάδας και μια από τις αρχαιότερες πόλεις.',
  '北京是中华人民共和国的首都，也是全国的政治和文化中心。',
  '東京は日本の首都であり、世界最大級の都市圏を形成している。',
  '서울은 대한민국의 수도이며 가장 큰 도시이다.',
  'القاهرة هي عاصمة مصر وأكبر مدنها.',
  'दिल्ली भारत की राजधानी है और एक ऐतिहासिक शहर है।',
  'La niña comió pingüino asado en Córdoba el año pasado.',
  'São Paulo é a maior cidade do Brasil e da América do Sul.',
  'İstanbul, Türkiye\'nin en kalabalık şehridir.',
  'Tiếng Việt là ngôn ngữ chính thức của Việt Nam.',
  'กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย',
  'Emoji test 😀👍🏽 🇫🇷 👨‍👩‍👧 and math 𝐀𝐁𝐂 ∑ x² ≤ 10.',
];

function multilingualDoc(r: () => number): string {
  const n = 2 + Math.floor(r() * 5);
  const parts: string[] = [];
  for (let i = 0; i < n; i++) parts.push(MULTILINGUAL[Math.floor(r() * MULTILINGUAL.length)]);
  return (r() < 0.5 ? 'passage: ' : 'query: ') + parts.join(' ');
}

interface Contender {
  name: string;
  run(docs: string[]): Promise<number>; // returns the number of tokens produced
}

async function timeIt(c: Contender, docs: string[]): Promise<{ ms: number; tokens: number }> {
  await c.run(docs); // warm-up: JIT, caches
  let best = Infinity;
  let tokens = 0;
  for (let rep = 0; rep < 3; rep++) {
    const t0 = process.hrtime.bigint();
    tokens = await c.run(docs);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return { ms: best, tokens };
}

async function main(): Promise<void> {
  const nDocs = Number(process.argv[process.argv.indexOf('--docs') + 1]) || 2000;
  if (!fs.existsSync(path.join(modelDir, 'tokenizer.json'))) {
    console.log(`skipping: ${modelDir}/tokenizer.json not found (../shared is absent)`);
    return;
  }
  const tokenizerJson = JSON.parse(fs.readFileSync(path.join(modelDir, 'tokenizer.json'), 'utf8'));
  const tokenizerConfig = JSON.parse(fs.readFileSync(path.join(modelDir, 'tokenizer_config.json'), 'utf8'));

  const ours = BertTokenizer.fromFolder(modelDir);
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const rust = require('tokenizers').Tokenizer.fromFile(path.join(modelDir, 'tokenizer.json'));
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { Tokenizer: JsTokenizer } = require('@huggingface/tokenizers');
  const js = new JsTokenizer(tokenizerJson, tokenizerConfig);

  const contenders: Contender[] = [
    { name: 'ours (TypeScript)', run: async (docs) => docs.reduce((n, d) => n + ours.encode(d, { maxLength: 1e9 }).nTokens, 0) },
    { name: '@huggingface/tokenizers (JS)', run: async (docs) => docs.reduce((n, d) => n + js.encode(d).ids.length, 0) },
    {
      name: 'tokenizers (Rust) encodeBatch',
      run: async (docs) => (await rust.encodeBatch(docs)).reduce((n: number, e: { getLength(): number }) => n + e.getLength(), 0),
    },
    {
      name: 'tokenizers (Rust) encode x N',
      run: async (docs) => {
        let n = 0;
        for (const d of docs) n += (await rust.encode(d)).getLength();
        return n;
      },
    },
  ];

  const corpora: Array<[string, string[]]> = [
    ['English', Array.from({ length: nDocs }, ((r) => () => englishDoc(r))(rng(1)))],
    ['multilingual', Array.from({ length: nDocs }, ((r) => () => multilingualDoc(r))(rng(2)))],
    // The differential tests' generator: every script and category, few repeated words (cold caches).
    ['hostile mixed-script', Array.from({ length: nDocs }, ((r) => () => randomText(r, 40))(fixtureRng(3)))],
  ];
  console.log(`node ${process.version}, ${nDocs} documents per corpus, best of 3 after a warm-up`);
  for (const [name, docs] of corpora) {
    const chars = docs.reduce((n, d) => n + d.length, 0);
    console.log(`\n${name}: ${docs.length} docs, ${chars} UTF-16 units`);
    const results: Record<string, number> = {};
    for (const c of contenders) {
      const { ms, tokens } = await timeIt(c, docs);
      results[c.name] = tokens / (ms / 1000);
      console.log(`  ${c.name.padEnd(32)} ${tokens.toString().padStart(8)} tokens  ${ms.toFixed(0).padStart(6)} ms  ${(results[c.name] / 1e6).toFixed(2).padStart(6)} M tokens/s`);
    }
    const o = results['ours (TypeScript)'];
    console.log(`  ours / JS            = ${(o / results['@huggingface/tokenizers (JS)']).toFixed(2)}x`);
    console.log(`  ours / Rust batch    = ${(o / results['tokenizers (Rust) encodeBatch']).toFixed(2)}x`);
    console.log(`  ours / Rust encode   = ${(o / results['tokenizers (Rust) encode x N']).toFixed(2)}x`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
