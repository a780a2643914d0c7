/**
 * Where results go. Files are written under a temp name in the target's folder and renamed
 * into place only when complete, so a failed or interrupted run never leaves a half-written
 * file (nor replaces a good one); an existing file is only replaced with --force.
 *
 * What an --output path may be (outputTarget):
 *   a new name, a regular file      temp file + rename (link without --force); a symbolic link to a
 *                                   regular file is followed: the file it names is replaced, the link kept
 *   a character device or a FIFO    written in place when complete (/dev/null, a named pipe), never
 *                                   renamed over; needs no --force (nothing is replaced)
 *   this process's stdout           (/dev/stdout, a link to it; isStdout) written as stdout is, like '-'
 *   anything else                   refused: a directory, a block device, a socket, a dangling or looping link
 * Data bound for a device, a FIFO or stdout waits in a spool file that is unlinked as soon as it is
 * opened, so no spool outlives the process, whatever ends it.
 */
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { kindOf } from '../util/model_file';
import { processAlive } from '../util/process';

/** Temp files of this process, removed on failure or Ctrl-C. */
const openTemps = new Set<string>();

export function removeTempFiles(): void {
  for (const f of openTemps) fs.rmSync(f, { force: true, recursive: true });
  openTemps.clear();
}


/**
 * A temp path next to `target` (same filesystem, so rename is atomic):
 * `.<name>.<pid>.<8 hex>.tmp`, so a later run can tell whose it is.
 */
export function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/**
 * Whether `target` means this process's stdout: '-', or a path to the very file, pipe or socket
 * fd 1 is (/dev/stdout, /proc/self/fd/1, a link to them). Such an output is written to stdout:
 * a socket cannot be opened by path, and a file there was opened (and truncated) by the shell.
 */
export function isStdout(target: string): boolean {
  if (target === '-') return true;
  try {
    const a = fs.statSync(target), b = fs.fstatSync(1);
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    return false;
  }
}

/** An --output path that cannot be written (a directory, a block device, a dangling link...). */
export class OutputTargetError extends Error {}

/** Where an output path leads (see the module comment). */
export type OutputTarget =
  | { kind: 'file'; path: string; exists: boolean } // path: where the file is put (a link's target, resolved)
  | { kind: 'stream'; path: string }; // a character device or FIFO, written in place

/** What writing `target` means; throws OutputTargetError for the paths that are refused. */
export function outputTarget(target: string): OutputTarget {
  const code = (e: unknown) => (e as NodeJS.ErrnoException).code ?? String(e);
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(target, { throwIfNoEntry: false });
  } catch (e) {
    throw new OutputTargetError(`--output ${target}: cannot be used (${code(e)})`);
  }
  if (!st) return { kind: 'file', path: target, exists: false };
  const link = st.isSymbolicLink();
  if (link) {
    try {
      st = fs.statSync(target);
    } catch (e) {
      const why = code(e) === 'ELOOP' ? 'a symbolic link loop' : code(e) === 'ENOENT' ? `a symbolic link to a missing file (${fs.readlinkSync(target)})` : `a symbolic link that cannot be followed (${code(e)})`;
      throw new OutputTargetError(`--output ${target} is ${why}`);
    }
  }
  if (st.isFile()) return { kind: 'file', path: link ? fs.realpathSync(target) : target, exists: true };
  if (st.isCharacterDevice() || st.isFIFO()) return { kind: 'stream', path: target };
  if (st.isDirectory()) throw new OutputTargetError(`--output ${target} is a directory, expected a file name`);
  throw new OutputTargetError(`--output ${target} is ${kindOf(st)}: only regular files, character devices and FIFOs are written`);
}

/**
 * Remove the temp files a killed run (kill -9, power loss) left for `target`: those named by
 * tempPathFor whose process no longer exists. A live run's files are never touched.
 * Returns the names removed.
 */
export function removeStaleTempFiles(target: string): string[] {
  let dest: OutputTarget;
  try {
    dest = outputTarget(target);
  } catch {
    return []; // reported by outputConflict
  }
  if (dest.kind === 'stream') return []; // spools are unlinked at once
  const dir = path.dirname(path.resolve(dest.path));
  const prefix = `.${path.basename(dest.path)}.`;
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
 * without --force, or it is a directory, a block device, a dangling link... Returns undefined when the path is fine.
 */
export function outputConflict(target: string, force: boolean): string | undefined {
  let dest: OutputTarget;
  try {
    dest = outputTarget(target);
  } catch (e) {
    if (e instanceof OutputTargetError) return e.message;
    throw e;
  }
  if (dest.kind === 'file' && dest.exists && !force) return `--output ${target} exists; pass --force to replace it`;
  return undefined;
}

/** Fail early (before loading a model) when the output folder is missing or not writable. */
export function checkWritableFolder(target: string): void {
  const dest = outputTarget(target);
  if (dest.kind === 'stream') return;
  const dir = path.dirname(path.resolve(dest.path));
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
function placeFile(tmp: string, target: string, replace: boolean): void {
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

/** Bytes written at the end or at a position: what the npy and safetensors writers need of a file. */
export interface OutputFile {
  readonly bytesWritten: number;
  write(data: Uint8Array | string): void;
  writeAt(bytes: Uint8Array, position: number): void;
  abort(): void;
}

/**
 * A temp file in the system's temp folder, unlinked as soon as it is opened: its data lives only
 * as long as this process holds the descriptor, so an EPIPE exit or a kill -9 leaves nothing.
 * For data bound for stdout, a device or a FIFO, which cannot be seeked.
 */
export class SpoolFile implements OutputFile {
  private fd: number | undefined;
  private written = 0;

  constructor(private readonly name: string) {
    const file = tempPathFor(path.join(os.tmpdir(), 'e5-spool'));
    try {
      this.fd = fs.openSync(file, 'wx+', 0o600); // read back on commit
    } catch (e) {
      throw new Error(`${name}: cannot create a spool file in ${os.tmpdir()} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    fs.unlinkSync(file);
  }

  get bytesWritten(): number {
    return this.written;
  }

  write(data: Uint8Array | string): void {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    this.writeAt(bytes, this.written);
    this.written += bytes.length;
  }

  writeAt(bytes: Uint8Array, position: number): void {
    if (this.fd === undefined) throw new Error(`${this.name}: write after close`);
    writeFully(this.fd, bytes, position, this.name);
  }

  /** The spooled bytes, 1 MiB at a time, from the start. */
  *chunks(): Generator<Buffer> {
    if (this.fd === undefined) throw new Error(`${this.name}: read after close`);
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let at = 0; at < this.written;) {
      const n = fs.readSync(this.fd, buf, 0, Math.min(buf.length, this.written - at), at);
      if (n === 0) throw new Error(`${this.name}: the spool file ended early`);
      at += n;
      yield buf.subarray(0, n);
    }
  }

  /** Copy everything to `target` (a device or FIFO) in place, then close. */
  copyTo(target: string): void {
    let out: number;
    try {
      out = fs.openSync(target, fs.constants.O_WRONLY); // no O_CREAT, no O_TRUNC: the node stays as it is
    } catch (e) {
      throw new Error(`${target}: cannot open for writing (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    try {
      for (const chunk of this.chunks()) writeFully(out, chunk, null, target);
    } finally {
      fs.closeSync(out);
      this.abort();
    }
  }

  /** Copy everything to stdout (honouring back-pressure), then close. */
  async toStdout(): Promise<void> {
    try {
      for (const chunk of this.chunks()) await writeStdout(Buffer.from(chunk));
    } finally {
      this.abort();
    }
  }

  abort(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

function writeFully(fd: number, bytes: Uint8Array, position: number | null, name: string): void {
  let done = 0;
  try {
    while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done, position === null ? null : position + done);
  } catch (e) {
    throw new Error(`${name}: write failed (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/**
 * A file written to a temp name and put at `target` on commit() (see placeFile for `replace`);
 * a device or FIFO target gets the bytes written in place on commit() instead (see outputTarget).
 */
export class AtomicFile implements OutputFile {
  private fd: number | undefined;
  private readonly tmp: string | undefined;
  private readonly spool: SpoolFile | undefined;
  private readonly dest: OutputTarget;
  private written = 0;
  private readonly replace: boolean;

  constructor(readonly target: string, opts: { replace?: boolean } = {}) {
    this.replace = opts.replace ?? true;
    this.dest = outputTarget(target);
    if (this.dest.kind === 'stream') {
      this.spool = new SpoolFile(target);
      return;
    }
    this.tmp = tempPathFor(this.dest.path);
    try {
      this.fd = fs.openSync(this.tmp, 'wx');
    } catch (e) {
      throw new Error(`${target}: cannot create (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    openTemps.add(this.tmp);
  }

  get bytesWritten(): number {
    return this.spool ? this.spool.bytesWritten : this.written;
  }

  write(data: Uint8Array | string): void {
    if (this.spool) return this.spool.write(data);
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    this.writeAt(bytes, this.written);
    this.written += bytes.length;
  }

  /** Overwrite bytes already written (e.g. a header whose sizes are known only at the end). */
  writeAt(bytes: Uint8Array, position: number): void {
    if (this.spool) return this.spool.writeAt(bytes, position);
    if (this.fd === undefined) throw new Error(`${this.target}: write after close`);
    writeFully(this.fd, bytes, position, this.target);
  }

  commit(): void {
    if (this.spool) return this.spool.copyTo(this.dest.path);
    if (this.fd === undefined) return;
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    this.fd = undefined;
    try {
      placeFile(this.tmp!, this.dest.path, this.replace);
    } finally {
      openTemps.delete(this.tmp!);
    }
  }

  abort(): void {
    if (this.spool) return this.spool.abort();
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
    fs.rmSync(this.tmp!, { force: true });
    openTemps.delete(this.tmp!);
  }
}

/** Text output: stdout (honouring back-pressure) or an AtomicFile. */
export interface TextSink {
  write(s: string): Promise<void>;
  commit(): Promise<void>;
  abort(): void;
}

/** `text` into `file` through an AtomicFile: complete, or not there at all (the old file kept). */
export function writeTextFile(file: string, text: string): void {
  const f = new AtomicFile(file);
  try {
    f.write(text);
    f.commit();
  } catch (e) {
    f.abort();
    throw e;
  }
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
