/**
 * The import rules of docs/ARCHITECTURE.md, checked (`make test` runs `npm run depcheck`;
 * test/project/architecture.test.ts proves a forbidden import fails). Paths are from the repository root.
 *
 *   floor 5  cli/ + bin/              imports index.ts (the public API), cli/ and util/ (small helpers)
 *   floor 4  inspect/  eval/          the library below them, never cli/
 *   floor 3  e5/                      engine/, weights/, tokenizer/, util/
 *   floor 2  engine/                  weights/, util/; backends beside the model, never the registry
 *   floor 1  tokenizer/  weights/     pure TypeScript (tokenizer knows no tfjs); util/
 *   floor 0  util/
 */
const LIBRARY = '^(index\\.ts|util|tokenizer|weights|engine|e5|inspect|eval|cli)(/|$)';

module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'files that import each other in a loop', from: {}, to: { circular: true } },
    {
      name: 'cli-on-the-public-api', severity: 'error',
      comment: 'cli/ is built on what index.ts exports (and on cli/ itself and the small helpers of util/)',
      from: { path: '^cli/' },
      to: { path: '^(tokenizer|weights|engine|e5|inspect|eval|bench|devtools|test)/' },
    },
    {
      name: 'inspect-eval-below-cli', severity: 'error',
      comment: 'inspect/ and eval/ sit on the library; nothing there knows the command line',
      from: { path: '^(inspect|eval)/' },
      to: { path: '^(cli/|index\\.ts$)' },
    },
    {
      name: 'e5-below-inspect-eval', severity: 'error',
      from: { path: '^e5/' },
      to: { path: '^(cli|inspect|eval)/|^index\\.ts$' },
    },
    {
      name: 'engine-below-e5', severity: 'error',
      comment: 'engine/ knows weights/ types, not texts, tokenizers or anything above it',
      from: { path: '^engine/' },
      to: { path: '^(cli|inspect|eval|e5|tokenizer)/|^index\\.ts$' },
    },
    {
      name: 'backends-beside-the-model', severity: 'error',
      comment: 'a backend folder builds its Runtime from engine/runtime.ts; the registry (engine/backend.ts) imports the backends',
      from: { path: '^engine/backends/' },
      to: { path: '^engine/backend\\.ts$' },
    },
    {
      name: 'bert-is-generic', severity: 'error',
      comment: 'engine/bert.ts is written against EncoderOps<V> only: no tfjs, no backend',
      from: { path: '^engine/bert\\.ts$' },
      to: { path: '(@tensorflow|^engine/backends/|^engine/(backend|runtime|eager)\\.ts$)' },
    },
    {
      name: 'weights-tokenizer-on-floor-1', severity: 'error',
      from: { path: '^(weights|tokenizer)/' },
      to: { path: '^(cli|inspect|eval|e5|engine)/|^index\\.ts$' },
    },
    {
      name: 'tokenizer-knows-no-tfjs', severity: 'error',
      from: { path: '^tokenizer/' },
      to: { path: '@tensorflow' },
    },
    {
      name: 'util-is-the-ground', severity: 'error',
      from: { path: '^util/' },
      to: { path: '^(cli|inspect|eval|e5|engine|weights|tokenizer)/|^index\\.ts$' },
    },
    {
      name: 'the-library-ships-alone', severity: 'error',
      comment: 'the published dist/ holds no bench/, devtools/ or test/ code',
      from: { path: LIBRARY },
      to: { path: '^(bench|devtools|test)/' },
    },
    {
      name: 'nothing-imports-tests', severity: 'error',
      from: { pathNot: '^test/' },
      to: { path: '^test/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist|\\.cache)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
};
