/**
 * Running `bin/e5` from tests, against the shared compiled build of devtools/cli-build.ts.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BIN, cliBuild, REPO_ROOT } from '../../devtools/cli-build';

export { BIN, cliBuild, REPO_ROOT };

/**
 * The backend the CLI suites run the model on: cpu (a fast start) unless E5_TEST_BACKEND names one,
 * so `make test-tensorflow` runs them on tensorflow.
 */
export const CLI_BACKEND = process.env.E5_TEST_BACKEND ?? 'cpu';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  raw: Buffer;
}

export interface CliOptions {
  /** Bytes or text piped to stdin (default: none, stdin closed). */
  input?: string | Buffer;
  cwd?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
}

/** The environment the CLI runs in under test: offline, a private empty hub cache, the shared build. */
export function cliEnv(extra: Record<string, string> = {}): Record<string, string> {
  const dist = cliBuild();
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    // Never reach for the network; a private empty hub cache.
    HF_HUB_OFFLINE: '1',
    HF_HUB_CACHE: path.join(os.tmpdir(), 'e5-cli-test-empty-hub-cache'),
    ...(dist ? { E5_DIST: dist } : { E5_FROM_SOURCE: '1' }),
    ...extra,
  };
  if (dist) delete env.E5_FROM_SOURCE;
  return env;
}

/** Run `bin/e5 ...args` and collect its exit code, stdout and stderr. */
export function e5(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  const env = cliEnv(opts.env);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: opts.cwd ?? REPO_ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [], err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`e5 ${args.join(' ')}: timed out after ${opts.timeoutMs ?? 90_000} ms`));
    }, opts.timeoutMs ?? 90_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const raw = Buffer.concat(out);
      resolve({ code: code ?? -1, stdout: raw.toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), raw });
    });
    child.stdin.on('error', () => {}); // the CLI may exit before reading all of stdin
    child.stdin.end(opts.input ?? '');
  });
}

/** Parse JSON Lines output. */
export function jsonLines<T = Record<string, unknown>>(s: string): T[] {
  return s.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as T);
}

/** A fresh temp folder, removed by the caller's cleanup. */
export function tempDir(prefix = 'e5-cli-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}
