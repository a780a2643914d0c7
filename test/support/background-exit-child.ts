/**
 * A script that loads a model on tensorflow (argv[2]) and leaves while its weights may still be
 * read in the background: argv[3] 'exit' calls process.exit at once, 'drop' lets the script end
 * with the model never used. test/engine/background.test.ts requires both to end with status 0.
 */
import { initBackend, loadModel } from '../../index';

(async () => {
  await initBackend({ backend: 'tensorflow', threads: 2 });
  const model = await loadModel(process.argv[2]);
  console.log(JSON.stringify({ pending: model.bert.pendingWeights !== undefined }));
  if (process.argv[3] === 'exit') process.exit(0);
})();
