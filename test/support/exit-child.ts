/**
 * A user's script: initialise a backend (argv[2], 'default' = the library's choice), load a model
 * (argv[3]), embed, print — and nothing else: no process.exit. test/cli/exit.test.ts requires it to
 * end on its own.
 */
import { initBackend, loadModel } from '../../index';
import type { BackendName } from '../../engine/backend';

(async () => {
  const asked = process.argv[2];
  const runtime = await initBackend(asked === 'default' ? {} : { backend: asked as BackendName });
  const model = await loadModel(process.argv[3]);
  const { embeddings } = await model.embed(['query: does this process exit?']);
  console.log(JSON.stringify({ backend: runtime.name, threads: runtime.threads, dim: embeddings[0].length }));
})();
