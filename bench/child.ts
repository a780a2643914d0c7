/**
 * A persistent child process that answers one JSON line per JSON line (bench/torch_bench.py,
 * bench/ort_child.ts). Requests go one at a time; each reply carries `ok` and, on failure,
 * `error`. The wall time of every request as seen from here is returned next to the reply, so
 * a child's own timing (inside) and ours (outside, IPC included) can both be reported.
 */
import { ChildProcessWithoutNullStreams, spawn } from 'child_process';
import * as readline from 'readline';

export class ChildError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChildError';
  }
}

export type Reply = Record<string, unknown> & { ok: boolean; error?: string };

export class JsonLinesChild {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly pending: Array<(line: string | null) => void> = [];
  private stderrTail = '';
  private exited: string | null = null;

  constructor(readonly label: string, command: string, args: string[], env: NodeJS.ProcessEnv, cwd?: string) {
    this.proc = spawn(command, args, { env, cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stderr.on('data', (b: Buffer) => {
      this.stderrTail = (this.stderrTail + b.toString()).slice(-4000);
    });
    readline.createInterface({ input: this.proc.stdout }).on('line', (line) => this.pending.shift()?.(line));
    this.proc.on('error', (e) => this.fail(`could not start: ${e.message}`));
    this.proc.on('exit', (code, signal) => this.fail(`exited (${signal ?? `code ${code}`})`));
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  private fail(why: string): void {
    this.exited ??= why;
    while (this.pending.length) this.pending.shift()!(null);
  }

  /** Send one request; resolves with the reply and the wall seconds it took from here. */
  async request(req: Record<string, unknown>): Promise<{ reply: Reply; outsideSeconds: number }> {
    if (this.exited) throw new ChildError(`${this.label} ${this.exited}${this.tail()}`);
    const t0 = performance.now();
    const line = await new Promise<string | null>((resolve) => {
      this.pending.push(resolve);
      this.proc.stdin.write(JSON.stringify(req) + '\n');
    });
    const outsideSeconds = (performance.now() - t0) / 1000;
    if (line === null) throw new ChildError(`${this.label} ${this.exited ?? 'closed its output'} during '${req.cmd}'${this.tail()}`);
    let reply: Reply;
    try {
      reply = JSON.parse(line) as Reply;
    } catch {
      throw new ChildError(`${this.label} answered '${req.cmd}' with a line that is not JSON: ${line.slice(0, 200)}`);
    }
    if (!reply.ok) throw new ChildError(`${this.label} failed '${req.cmd}': ${reply.error ?? 'no error message'}`);
    return { reply, outsideSeconds };
  }

  private tail(): string {
    const t = this.stderrTail.trim();
    return t ? `\n--- ${this.label} stderr (last lines) ---\n${t.split('\n').slice(-15).join('\n')}` : '';
  }

  /** Ask the child to quit, and kill it (this child only) if it has not exited within `graceMs`. */
  async close(graceMs = 5000): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((resolve) => this.proc.once('exit', () => resolve()));
    this.proc.stdin.write(JSON.stringify({ cmd: 'quit' }) + '\n');
    this.proc.stdin.end();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    await done;
    clearTimeout(timer);
  }
}

/** Threads of a process as the kernel counts them (/proc/PID/status), or undefined off Linux. */
export function osThreads(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /Threads:\s+(\d+)/.exec(require('fs').readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}
