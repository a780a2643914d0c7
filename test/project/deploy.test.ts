/**
 * The files of deploy/ without a scheduler (make test-deploy runs deploy/slurm on a real Slurm):
 * every Kubernetes manifest parses, they agree with each other (the claim pvc.yaml makes, the image
 * deploy/Dockerfile builds, completions = E5_SHARD_COUNT), and their commands run by hand — /shared
 * a temp folder, the model a generated one, `e5` the CLI as the image puts it on PATH — in the
 * README's order: warm-up, the embed shards and the merge, the eval shards and the final eval, the
 * scan shards and the final scan.
 * The Slurm scripts parse as bash.
 */
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { cachedModel } from '../../devtools/generate-model';
import { BIN, cliEnv, REPO_ROOT, tempDir } from '../support/cli';

// js-yaml comes with mocha (no types of its own)
const yaml = require('js-yaml') as { loadAll(text: string): unknown[] };

interface Container { image: string; command?: string[]; args?: string[]; env?: Array<{ name: string; value: string }>; workingDir?: string }
interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec: {
    completionMode?: string;
    completions?: number;
    template?: { spec: { containers: Container[]; volumes: Array<{ persistentVolumeClaim?: { claimName: string } }> } };
    accessModes?: string[];
  };
}

const K8S = path.join(REPO_ROOT, 'deploy', 'k8s');
const load = (file: string) => yaml.loadAll(fs.readFileSync(path.join(K8S, file), 'utf8')) as Manifest[];
const version = (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const IMAGE = `e5-tfjs:${version}`;
const HUB = 'intfloat/e5-large-unsupervised';

describe('deploy/: the Kubernetes manifests, the Dockerfile and the Slurm scripts', function () {
  this.timeout(300_000);
  const files = fs.readdirSync(K8S).filter((f) => f.endsWith('.yaml')).sort();
  const jobs = () => files.flatMap(load).filter((m) => m.kind === 'Job');

  it('every manifest parses; the Jobs mount the claim pvc.yaml makes and run the image the Dockerfile builds', () => {
    assert.deepEqual(files, ['embed-merge.yaml', 'embed-shards.yaml', 'eval-final.yaml', 'eval-shards.yaml', 'pvc.yaml', 'scan-final.yaml', 'scan-shards.yaml', 'warm-up.yaml']);
    for (const f of files) {
      for (const m of load(f)) {
        assert.ok(m.apiVersion && m.kind && m.metadata?.name, `${f}: apiVersion, kind, metadata.name`);
      }
    }
    const [pvc] = load('pvc.yaml');
    assert.equal(pvc.kind, 'PersistentVolumeClaim');
    assert.deepEqual(pvc.spec.accessModes, ['ReadWriteMany'], 'pods on different nodes write it at once');
    const dockerfile = fs.readFileSync(path.join(REPO_ROOT, 'deploy', 'Dockerfile'), 'utf8');
    assert.match(dockerfile, /^FROM node:20-bookworm-slim$/m);
    assert.ok(dockerfile.includes(`docker build -f deploy/Dockerfile -t ${IMAGE} .`), `the Dockerfile's build command tags ${IMAGE}`);
    assert.match(dockerfile, /^RUN npm install --omit=dev --no-audit --no-fund \/tmp\/e5-tfjs-\*\.tgz/m, 'installs the packed tarball');
    assert.match(dockerfile, /^ENV PATH=\/opt\/e5\/node_modules\/\.bin:\$PATH$/m, 'e5 on PATH');
    // the context is the checkout: only the tarball is sent (not node_modules/, .cache/)
    const ignore = fs.readFileSync(path.join(REPO_ROOT, 'deploy', 'Dockerfile.dockerignore'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
    assert.deepEqual(ignore, ['*', '!e5-tfjs-*.tgz']);
    assert.equal(jobs().length, 7);
    for (const job of jobs()) {
      const spec = job.spec.template!.spec;
      assert.deepEqual(spec.containers.map((c) => c.image), [IMAGE], job.metadata.name);
      assert.deepEqual(spec.volumes.map((v) => v.persistentVolumeClaim?.claimName), [pvc.metadata.name], job.metadata.name);
      if (job.spec.completionMode === 'Indexed') {
        const count = spec.containers[0].env?.find((e) => e.name === 'E5_SHARD_COUNT')?.value;
        assert.equal(Number(count), job.spec.completions, `${job.metadata.name}: E5_SHARD_COUNT = completions`);
      }
    }
  });

  it('the Slurm scripts parse as bash', () => {
    const dir = path.join(REPO_ROOT, 'deploy', 'slurm');
    for (const f of fs.readdirSync(dir)) {
      const r = spawnSync('bash', ['-n', path.join(dir, f)], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${f}: ${r.stderr}`);
    }
  });

  it("the Jobs' commands, run by hand in the README's order, make the merged embeddings and the report", () => {
    const root = tempDir('e5-k8s-');
    try {
      const shared = path.join(root, 'shared'), bin = path.join(root, 'bin');
      fs.mkdirSync(bin);
      // `e5` on PATH, as in the image
      fs.writeFileSync(path.join(bin, 'e5'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} "$@"\n`, { mode: 0o755 });
      const model = cachedModel({ preset: 'tiny' });
      // the data the manifests name, on the shared volume
      fs.mkdirSync(path.join(shared, 'data'), { recursive: true });
      fs.writeFileSync(path.join(shared, 'data', 'passages.jsonl'), Array.from({ length: 600 }, (_, i) => JSON.stringify({ text: `passage number ${i} about ${i % 7} things` })).join('\n') + '\n');
      fs.cpSync(path.join(REPO_ROOT, 'test', 'fixtures', 'eval', 'tiny'), path.join(shared, 'data', 'scifact'), { recursive: true });
      const N = 3; // the README: set completions and E5_SHARD_COUNT to the same N
      const run = (job: Manifest, index?: number) => {
        const c = job.spec.template!.spec.containers[0];
        const argv = [...(c.command ?? []), ...(c.args ?? [])].map((a) => a.split('/shared').join(shared).split(HUB).join(model));
        const env: Record<string, string> = { PATH: `${bin}:${process.env.PATH}` };
        for (const e of c.env ?? []) env[e.name] = e.value.split('/shared').join(shared);
        if (index !== undefined) Object.assign(env, { JOB_COMPLETION_INDEX: String(index), E5_SHARD_COUNT: String(N) });
        const r = spawnSync(argv[0], argv.slice(1), { cwd: (c.workingDir ?? '/').split('/shared').join(shared), env: cliEnv(env), encoding: 'utf8', timeout: 120_000 });
        assert.equal(r.status, 0, `${job.metadata.name}${index === undefined ? '' : ` index ${index}`}: ${argv.join(' ')}\n${r.stderr}`);
        return r;
      };
      const byName = (name: string) => jobs().find((j) => j.metadata.name === name)!;
      run(byName('e5-warm-up'));
      for (let i = 0; i < N; i++) run(byName('e5-embed-shards'), i);
      run(byName('e5-embed-merge'));
      assert.ok(fs.statSync(path.join(shared, 'out', 'passages.npy')).size > 600 * 32 * 4, 'the merged .npy holds every row');
      for (let i = 0; i < N; i++) run(byName('e5-eval-shards'), i);
      const final = run(byName('e5-eval-final'));
      assert.match(final.stderr, /cache \d+\/\d+ shards reused/);
      const report = JSON.parse(fs.readFileSync(path.join(shared, 'out', 'scifact.json'), 'utf8')) as { means: object };
      assert.ok(report.means, 'a report');
      // the ablation scan: its cells over the indexes, then the grid from the cached cells
      for (let i = 0; i < N; i++) assert.match(run(byName('e5-scan-shards'), i).stdout, /^eval scan shard \d\/3: \d of 8 head cells/);
      run(byName('e5-scan-final'));
      const grid = JSON.parse(fs.readFileSync(path.join(shared, 'out', 'scifact-heads.json'), 'utf8')) as { cache: { reused: number; computed: number }; grid: unknown[][] };
      assert.deepEqual([grid.cache.reused, grid.cache.computed, grid.grid.length], [8, 0, 2], 'every cell from the tasks (the tiny model: 2 layers × 4 heads)');
      assert.match(fs.readFileSync(path.join(shared, 'out', 'scifact-heads.html'), 'utf8'), /^<!DOCTYPE html>/);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
