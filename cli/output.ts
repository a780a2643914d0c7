/**
 * Where results go. Files are written under a temp name in the target's folder and renamed
 * into place only when complete, so a failed or interrupted run never leaves a half-written
 * file (nor replaces a good one); an existing file is only replaced with --force.
 */
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { processAlive } from '../util/process';

/** Temp files of this process, removed on failure or Ctrl-C. */
const openTemps = new Set<string>();

export function removeTempFiles(): void {
  for (const f of openTemps) fs.rmSync(f, { force: true, recursive: true });
  openTemps.clear();
}

/** A temp file of ours that is not an AtomicFile's (removed on failure or Ctrl-C like theirs). */
export function trackTempFile(file: string): void {
  openTemps.add(file);
}
export function untrackTempFile(file: string): void {
  openTemps.delete(file);
}

/**
 * A temp path next to `target` (same filesystem, so rename is atomic):
 * `.<name>.<pid>.<8 hex>.tmp`, so a later run can tell whose it is.
 */
export function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/**
 * Remove the temp files a killed run (kill -9, power loss) left for `target`: those named by
 * tempPathFor whose process no longer exists. A live run's files are never touched.
 * Returns the names removed.
 */
export function removeStaleTempFiles(target: string): string[] {
  const dir = path.dirname(path.resolve(target));
  const prefix = `.${path.basename(target)}.`;
  const removed: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return removed; // a missing folder is reported by checkWritableFolder
  }
  for (const name of names) {
    // Ours, or the one writeSafetensors makes next to ours (`.` + our name + its own suffix).
    const rest = name.startsWith(prefix) ? name.slice(prefix.length) : name.startsWith(`.${prefix}`) ? name.slice(prefix.length + 1) : undefined;
    const m = rest === undefined ? null : /^(\d+)\.[0-9a-f]{8}\.tmp(\.\d+\.[0-9a-f]{8}\.tmp)?$/.exec(rest);
    if (!m || processAlive(Number(m[1]))) continue;
    fs.rmSync(path.join(dir, name), { force: true, recursive: true });
    removed.push(name);
  }
  return removed;
}


/**
 * Problems with an output path that are the command line's fault (→ exit 2): the file exists
 * without --force, or it is a directory. Returns undefined when the path is fine.
 */
export function outputConflict(target: string, force: boolean): string | undefined {
  const stat = fs.statSync(target, { throwIfNoEntry: false });
  if (!stat) return undefined;
  if (stat.isDirectory()) return `--output ${target} is a directory, expected a file name`;
  if (!force) return `--output ${target} exists; pass --force to replace it`;
  return undefined;
}

/** Fail early (before loading a model) when the output folder is missing or not writable. */
export function checkWritableFolder(target: string): void {
  const dir = path.dirname(path.resolve(target));
  try {
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(`${target}: cannot write into ${dir} (${code === 'ENOENT' ? 'no such folder' : code})`);
  }
}

/**
 * Put the complete temp file `tmp` at `target`. With `replace`, rename over whatever is there;
 * without, link it into place, which fails if `target` exists — a file created there since the
 * run started (another run, another program) is kept, never silently replaced.
 */
export function placeFile(tmp: string, target: string, replace: boolean): void {
  if (replace) {
    fs.renameSync(tmp, target);
    return;
  }
  try {
    fs.linkSync(tmp, target);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      fs.rmSync(tmp, { force: true });
      throw new Error(`${target}: created by someone else while this run was writing; it was left as it is (pass --force to replace it)`);
    }
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw e;
    fs.copyFileSync(tmp, target, fs.constants.COPYFILE_EXCL); // a filesystem without hard links
  }
  fs.rmSync(tmp, { force: true });
}

/** A file written to a temp name and put at `target` on commit() (see placeFile for `replace`). */
export class AtomicFile {
  private fd: number | undefined;
  readonly tmp: string;
  private written = 0;
  private readonly replace: boolean;

  constructor(readonly target: string, opts: { replace?: boolean } = {}) {
    this.replace = opts.replace ?? true;
    this.tmp = tempPathFor(target);
    try {
      this.fd = fs.openSync(this.tmp, 'wx');
    } catch (e) {
      throw new Error(`${target}: cannot create (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    openTemps.add(this.tmp);
  }

  get bytesWritten(): number {
    return this.written;
  }

  write(data: Uint8Array | string): void {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    this.writeAt(bytes, this.written);
    this.written += bytes.length;
  }

  /** Overwrite bytes already written (e.g. a header whose sizes are known only at the end). */
  writeAt(bytes: Uint8Array, position: number): void {
    if (this.fd === undefined) throw new Error(`${this.target}: write after close`);
    let done = 0;
    try {
      while (done < bytes.length) done += fs.writeSync(this.fd, bytes, done, bytes.length - done, position + done);
    } catch (e) {
      throw new Error(`${this.target}: write failed (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }

  commit(): void {
    if (this.fd === undefined) return;
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    this.fd = undefined;
    try {
      placeFile(this.tmp, this.target, this.replace);
    } finally {
      openTemps.delete(this.tmp);
    }
  }

  abort(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
    fs.rmSync(this.tmp, { force: true });
    openTemps.delete(this.tmp);
  }
}

/** Text output: stdout (honouring back-pressure) or an AtomicFile. */
export interface TextSink {
  write(s: string): Promise<void>;
  commit(): Promise<void>;
  abort(): void;
}

export function textSink(target: string | undefined, opts: { replace?: boolean } = {}): TextSink {
  if (target === undefined) {
    return {
      write: (s) => writeStdout(s),
      commit: async () => {},
      abort: () => {},
    };
  }
  const file = new AtomicFile(target, opts);
  return {
    write: async (s) => file.write(s),
    commit: async () => file.commit(),
    abort: () => file.abort(),
  };
}

/** Write to stdout and wait when its buffer is full, so a slow reader bounds our memory. */
export function writeStdout(s: string | Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    const ok = process.stdout.write(s, (e) => (e ? reject(e) : undefined));
    if (ok) resolve();
    else process.stdout.once('drain', resolve);
  });
}
