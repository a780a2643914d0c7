/**
 * The Hugging Face hub cache and downloads into it.
 *
 * We share the cache with huggingface_hub (Python), so the layout is theirs:
 *
 *   <cache>/models--{org}--{name}/refs/{revision}          text file: the commit sha the revision resolved to
 *   <cache>/models--{org}--{name}/snapshots/{sha}/{file}   symlink to ../../blobs/{etag} (or a plain file
 *                                                          where symlinks are unavailable)
 *   <cache>/models--{org}--{name}/blobs/{etag}             the bytes; etag = LFS sha256 or git blob oid
 *
 * Downloads go through @huggingface/hub (`downloadFileToCacheDir`), which streams each file to
 * `blobs/{etag}.incomplete`, renames it and links it into the snapshot. Around it we add what that
 * function leaves out (see the notes at each call): resolving the revision to one commit, writing
 * `refs/{revision}`, choosing the files a BERT embedder needs, size checks, progress, and cleanup.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { downloadFileToCacheDir, HubApiError, listFiles, modelInfo } from '@huggingface/hub';
import type { ListFileEntry } from '@huggingface/hub';
import { PICKLE_FILE, pickleFiles } from './pickle';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';
export const DEFAULT_REVISION = 'main';

/** The small files we fetch when the repo has them (config, tokenizer, sentence-transformers). */
export const MODEL_FILES: readonly string[] = [
  'config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'vocab.txt',
  'special_tokens_map.json',
  'modules.json',
  'sentence_bert_config.json',
  '1_Pooling/config.json',
];
export const WEIGHTS_FILE = 'model.safetensors';
export const WEIGHTS_INDEX_FILE = 'model.safetensors.index.json';
/** Either one is enough for a WordPiece tokenizer. */
export const TOKENIZER_FILES: readonly string[] = ['tokenizer.json', 'vocab.txt'];

export type ModelFolderErrorKind =
  | 'not_found' // the folder / repo / revision does not exist
  | 'not_a_directory'
  | 'incomplete' // a required file is missing (listed in `missing`)
  | 'invalid' // a file we must read to find the others is malformed (the shard index)
  | 'bad_argument' // a model name, revision or file list we refuse
  | 'offline' // not in the cache and the network is off
  | 'download_failed';

/** Every failure to turn a model argument into a usable folder. */
export class ModelFolderError extends Error {
  override readonly name = 'ModelFolderError';
  constructor(
    message: string,
    readonly kind: ModelFolderErrorKind,
    /** The folder or file concerned, when there is one. */
    readonly path?: string,
    /** Missing files, relative to the folder. */
    readonly missing: readonly string[] = [],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

// ---------------------------------------------------------------------------------------------
// Names and cache layout

/** HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub (as huggingface_hub). */
export function hfHubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HF_HOME) return path.join(env.HF_HOME, 'hub');
  const cacheHome = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(cacheHome, 'huggingface', 'hub');
}

/** HF_HUB_OFFLINE accepts the same truthy spellings as huggingface_hub. */
export function isOfflineEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return ['1', 'ON', 'YES', 'TRUE'].includes((env.HF_HUB_OFFLINE ?? '').trim().toUpperCase());
}

export function isCommitHash(revision: string): boolean {
  return /^[0-9a-f]{40}$/.test(revision);
}

/** `org/name` with the characters the hub allows in both parts. */
export function isHubId(s: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/.test(s) && !s.includes('..') && !s.includes('--');
}

/** `<cache>/models--org--name` */
export function repoCacheFolder(cacheDir: string, repoId: string): string {
  return path.join(cacheDir, `models--${repoId.split('/').join('--')}`);
}

/** A revision becomes a path under refs/, so it must not climb out (`refs/pr/1` is fine). */
export function checkRevision(revision: string): void {
  const parts = revision.split('/');
  if (revision === '' || revision.includes('\\') || path.isAbsolute(revision) || parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw new ModelFolderError(`invalid revision '${revision}'`, 'bad_argument');
  }
}

/** A repo file name becomes a path under snapshots/<sha>/: relative, no `..`. */
function checkRepoPath(file: string): void {
  const parts = file.split('/');
  if (file === '' || file.includes('\\') || path.isAbsolute(file) || parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw new ModelFolderError(`invalid repo file name '${file}'`, 'bad_argument', file);
  }
}

/**
 * The snapshot a revision points at, if the cache has one: a commit sha names its snapshot directly,
 * anything else goes through refs/<revision>. Says nothing about completeness.
 */
export async function cachedSnapshot(
  cacheDir: string,
  repoId: string,
  revision: string,
): Promise<{ dir: string; commit: string } | undefined> {
  const repoDir = repoCacheFolder(cacheDir, repoId);
  let commit = revision;
  if (!isCommitHash(revision)) {
    const ref = await fs.readFile(path.join(repoDir, 'refs', revision), 'utf8').catch(() => undefined);
    if (ref === undefined) return undefined;
    commit = ref.trim();
    if (!isCommitHash(commit)) {
      throw new ModelFolderError(
        `${path.join(repoDir, 'refs', revision)} does not hold a commit sha (found '${commit.slice(0, 60)}')`,
        'invalid',
        path.join(repoDir, 'refs', revision),
      );
    }
  }
  const dir = path.join(repoDir, 'snapshots', commit);
  return (await isDirectory(dir)) ? { dir, commit } : undefined;
}

/** The unique shard file names of a `model.safetensors.index.json`, validated as plain file names. */
export function indexShardNames(text: string, file: string): string[] {
  let index: unknown;
  try {
    index = JSON.parse(text);
  } catch (e) {
    throw new ModelFolderError(`${file}: not valid JSON (${(e as Error).message})`, 'invalid', file);
  }
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new ModelFolderError(`${file}: 'weight_map' must be an object of tensor name -> shard file`, 'invalid', file);
  }
  const shards = new Set<string>();
  for (const [tensor, shard] of Object.entries(weightMap)) {
    const plain = typeof shard === 'string' && shard !== '' && shard !== '.' && shard !== '..' && !/[/\\]/.test(shard);
    if (!plain) {
      throw new ModelFolderError(
        `${file}: weight_map['${tensor}'] must be a plain file name, got ${JSON.stringify(shard)}`,
        'invalid',
        file,
      );
    }
    shards.add(shard as string);
  }
  return [...shards].sort();
}

// ---------------------------------------------------------------------------------------------
// Download

export interface DownloadProgress {
  /** The file being downloaded (repo path). */
  file: string;
  fileBytes: number;
  fileTotal: number;
  /** Bytes of all planned files so far / in total (files already in the cache are not counted). */
  bytes: number;
  total: number;
}

export interface DownloadOptions {
  repoId: string;
  revision: string;
  cacheDir: string;
  endpoint: string;
  token?: string;
  /** Repo files to fetch besides config, tokenizer, sentence-transformers files and weights. */
  extraFiles?: readonly string[];
  onProgress?: (p: DownloadProgress) => void;
}

interface RepoFile {
  path: string;
  size: number;
  /** The blob name: LFS sha256, else xet hash, else git oid — the same precedence as @huggingface/hub. */
  etag: string;
}

/**
 * Download the files a BERT embedder needs from `repoId@revision` into the cache and point
 * refs/<revision> at the commit. Files already in the snapshot are kept. Returns the snapshot.
 */
export async function downloadSnapshot(o: DownloadOptions): Promise<{ dir: string; commit: string }> {
  checkRevision(o.revision);
  const where = `${o.repoId}@${o.revision} from ${o.endpoint}`;
  const commit = await hubCall(where, () => resolveCommit(o));
  const listing = await hubCall(where, () => listRepoFiles(o, commit));
  const repoDir = repoCacheFolder(o.cacheDir, o.repoId);
  const dir = path.join(repoDir, 'snapshots', commit);

  const plan = planSmallFiles(listing, o.repoId, o.extraFiles ?? []);
  const weights = listing.get(WEIGHTS_FILE) ?? listing.get(WEIGHTS_INDEX_FILE);
  if (!weights) {
    const pickle = pickleFiles(listing.keys());
    const hint = pickle.length
      ? ` It has ${pickle.join(', ')}, which we never download (pickle can execute code): convert it to safetensors.`
      : '';
    throw new ModelFolderError(
      `${o.repoId}@${o.revision} has neither ${WEIGHTS_FILE} nor ${WEIGHTS_INDEX_FILE}.${hint}`,
      'incomplete',
      o.repoId,
      [WEIGHTS_FILE],
    );
  }

  const progress = new ProgressTracker(o.onProgress);
  const fetchAll = async (files: RepoFile[]): Promise<void> => {
    const todo: RepoFile[] = [];
    for (const f of files) if (!(await isFile(path.join(dir, f.path)))) todo.push(f);
    progress.plan(todo);
    for (const f of todo) await downloadOne(o, commit, repoDir, f, progress);
  };
  if (weights.path === WEIGHTS_INDEX_FILE) {
    // The shards are named inside the index, so it comes first.
    await fetchAll([weights]);
    const index = path.join(dir, WEIGHTS_INDEX_FILE);
    const shards = indexShardNames(await fs.readFile(index, 'utf8'), index);
    plan.push(...shards.map((s) => requireListed(listing, s, o)));
  } else {
    plan.push(weights);
  }
  await fetchAll(plan);
  if (!isCommitHash(o.revision)) await writeRef(repoDir, o.revision, commit);
  return { dir, commit };
}

/**
 * One commit for the whole download. `downloadFileToCacheDir` takes the snapshot name from the
 * file's *last commit* unless the revision is already a sha, which would scatter one revision's
 * files over several snapshots; so we resolve the sha here and pass it on.
 */
async function resolveCommit(o: DownloadOptions): Promise<string> {
  if (isCommitHash(o.revision)) return o.revision;
  const info = await modelInfo({
    name: o.repoId,
    revision: o.revision,
    additionalFields: ['sha'],
    hubUrl: o.endpoint,
    accessToken: o.token,
  });
  if (typeof info.sha !== 'string' || !isCommitHash(info.sha)) {
    throw new ModelFolderError(`${o.endpoint}: no commit sha for ${o.repoId}@${o.revision}`, 'download_failed', o.repoId);
  }
  return info.sha;
}

async function listRepoFiles(o: DownloadOptions, commit: string): Promise<Map<string, RepoFile>> {
  const files = new Map<string, RepoFile>();
  const entries = listFiles({ repo: o.repoId, revision: commit, recursive: true, hubUrl: o.endpoint, accessToken: o.token });
  for await (const e of entries) {
    if (e.type === 'file') files.set(e.path, { path: e.path, size: e.lfs?.size ?? e.size, etag: entryEtag(e) });
  }
  return files;
}

function entryEtag(e: ListFileEntry): string {
  const etag = e.lfs?.oid ?? e.xetHash ?? e.oid;
  if (!etag) throw new ModelFolderError(`no oid for ${e.path} in the repo listing`, 'download_failed', e.path);
  return etag;
}

/** config.json and a tokenizer are required; the other small files are taken when present. */
function planSmallFiles(listing: Map<string, RepoFile>, repoId: string, extraFiles: readonly string[]): RepoFile[] {
  const missing: string[] = [];
  if (!listing.has('config.json')) missing.push('config.json');
  if (!TOKENIZER_FILES.some((f) => listing.has(f))) missing.push(TOKENIZER_FILES.join(' or '));
  if (missing.length) throw new ModelFolderError(`${repoId} is missing ${missing.join(', ')}`, 'incomplete', repoId, missing);
  for (const f of extraFiles) {
    checkRepoPath(f);
    if (PICKLE_FILE.test(f)) {
      throw new ModelFolderError(`refusing to download ${f}: pickle files can execute code`, 'bad_argument', f);
    }
  }
  const extra = extraFiles.map((f) => requireListed(listing, f, { repoId }));
  const small = MODEL_FILES.flatMap((f) => listing.get(f) ?? []);
  return [...new Map([...small, ...extra].map((f) => [f.path, f])).values()];
}

function requireListed(listing: Map<string, RepoFile>, file: string, o: { repoId: string }): RepoFile {
  checkRepoPath(file);
  const f = listing.get(file);
  if (!f) throw new ModelFolderError(`${o.repoId} has no file ${file}`, 'incomplete', o.repoId, [file]);
  return f;
}

/**
 * Fetch one file into blobs/ + snapshots/<commit>/. @huggingface/hub streams to
 * `blobs/<etag>.incomplete` and renames on success, so a failed transfer never leaves a blob; but it
 * leaves the `.incomplete` file behind and does not check the length it received, so we do both.
 */
async function downloadOne(o: DownloadOptions, commit: string, repoDir: string, f: RepoFile, progress: ProgressTracker): Promise<void> {
  const blob = path.join(repoDir, 'blobs', f.etag);
  const pointer = path.join(repoDir, 'snapshots', commit, f.path);
  const stopWatching = progress.watch(f, `${blob}.incomplete`);
  // When the body request fails, the library aborts its stream with the message only and the HTTP
  // status is lost; this fetch remembers it so the error can say "HTTP 500".
  let failedStatus: number | undefined;
  const fetchRecordingStatus: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    if (!response.ok) failedStatus = response.status;
    return response;
  };
  try {
    await withoutLibraryChatter(() =>
      downloadFileToCacheDir({
        repo: o.repoId,
        path: f.path,
        revision: commit,
        cacheDir: o.cacheDir,
        hubUrl: o.endpoint,
        accessToken: o.token,
        fetch: fetchRecordingStatus,
      }),
    );
    const got = (await fs.stat(pointer)).size;
    if (got !== f.size) {
      await Promise.all([fs.rm(blob, { force: true }), fs.rm(pointer, { force: true })]);
      throw new ModelFolderError(
        `${f.path}: received ${got} bytes, expected ${f.size} (the transfer was cut short); run again to retry`,
        'download_failed',
        f.path,
      );
    }
  } catch (e) {
    await fs.rm(`${blob}.incomplete`, { force: true });
    if (e instanceof ModelFolderError) throw e;
    const what = `downloading ${f.path} of ${o.repoId}@${o.revision} from ${o.endpoint}`;
    throw hubFailure(e, what, f.path, failedStatus);
  } finally {
    stopWatching();
  }
  progress.fileDone(f);
}

/** refs/<revision> ← commit, written to a temp file and renamed. */
async function writeRef(repoDir: string, revision: string, commit: string): Promise<void> {
  const ref = path.join(repoDir, 'refs', revision);
  await fs.mkdir(path.dirname(ref), { recursive: true });
  const tmp = `${ref}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await fs.writeFile(tmp, commit);
  await fs.rename(tmp, ref);
}

/**
 * `downloadFileToCacheDir` logs "Downloading <file> to <path>" with console.debug, which Node sends
 * to stdout, where our CLI writes its results. Drop those lines while downloads run (ref-counted so
 * overlapping calls restore the original exactly once); every other console.debug passes through.
 */
let chatterDepth = 0;
let originalDebug: typeof console.debug = console.debug;
async function withoutLibraryChatter<T>(fn: () => Promise<T>): Promise<T> {
  if (chatterDepth++ === 0) {
    originalDebug = console.debug;
    const debug = originalDebug;
    console.debug = (...args: unknown[]) => {
      if (!(typeof args[0] === 'string' && args[0].startsWith('Downloading '))) debug(...args);
    };
  }
  try {
    return await fn();
  } finally {
    if (--chatterDepth === 0) console.debug = originalDebug;
  }
}

/** Run a hub API call, turning its failures into a ModelFolderError that says what to do. */
async function hubCall<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof ModelFolderError) throw e;
    throw hubFailure(e, what);
  }
}

function hubFailure(e: unknown, what: string, file?: string, failedStatus?: number): ModelFolderError {
  const status = e instanceof HubApiError ? e.statusCode : failedStatus;
  const err = e instanceof Error ? e : new Error(String(e));
  if (status !== undefined) {
    const hint =
      status === 401 || status === 403
        ? ' (access denied: set HF_TOKEN to a token that can read this repo)'
        : status === 404
          ? ' (not found: check the name and revision; private or gated repos also need HF_TOKEN)'
          : '';
    const kind = status === 404 ? 'not_found' : 'download_failed';
    // The library's messages end with the URL; its long `?expand=...` query says nothing to a user.
    const message = err.message.replace(/\?expand=\S*/, '');
    return new ModelFolderError(`${what}: HTTP ${status}${hint}: ${message}`, kind, file, [], { cause: e });
  }
  const cause = err.cause as { code?: string; message?: string } | undefined;
  if (err.message === 'fetch failed') {
    // undici: no response at all (refused, DNS, TLS...)
    return new ModelFolderError(
      `${what}: cannot reach the hub (${cause?.code ?? cause?.message ?? err.message}); ` +
        'set HF_ENDPOINT for a mirror, or HF_HUB_OFFLINE=1 to use only the cache',
      'download_failed',
      file,
      [],
      { cause: e },
    );
  }
  if (cause?.code) {
    // undici: the connection broke after the response started
    return new ModelFolderError(
      `${what}: the connection broke during the transfer (${cause.code}: ${cause.message ?? err.message}); run again to retry`,
      'download_failed',
      file,
      [],
      { cause: e },
    );
  }
  if (err instanceof TypeError && /access token/i.test(err.message)) {
    return new ModelFolderError(`${what}: HF_TOKEN rejected: ${err.message}`, 'bad_argument', file, [], { cause: e });
  }
  return new ModelFolderError(`${what}: ${err.message}`, 'download_failed', file, [], { cause: e });
}

// ---------------------------------------------------------------------------------------------
// Progress

/**
 * Byte progress, transport-agnostic: the library exposes no progress hook (and its xet path fetches
 * compressed chunks), so we watch the size of the `.incomplete` file it writes. The counts go to
 * the caller's `onProgress`; drawing them is the caller's business (the CLI's bar: cli/progress.ts).
 */
class ProgressTracker {
  private total = 0;
  private done = 0;
  constructor(private readonly onProgress?: (p: DownloadProgress) => void) {}

  plan(files: RepoFile[]): void {
    this.total += files.reduce((n, f) => n + f.size, 0);
  }

  watch(f: RepoFile, incomplete: string): () => void {
    if (!this.onProgress) return () => {};
    this.report(f, 0);
    const timer = setInterval(() => {
      fs.stat(incomplete).then((s) => this.report(f, Math.min(s.size, f.size)), () => {});
    }, 200);
    timer.unref();
    return () => clearInterval(timer);
  }

  fileDone(f: RepoFile): void {
    this.done += f.size;
    this.onProgress?.({ file: f.path, fileBytes: f.size, fileTotal: f.size, bytes: this.done, total: this.total });
  }

  private report(f: RepoFile, fileBytes: number): void {
    const p = { file: f.path, fileBytes, fileTotal: f.size, bytes: this.done + fileBytes, total: this.total };
    this.onProgress?.(p);
  }
}

// ---------------------------------------------------------------------------------------------
// Small fs helpers

async function isDirectory(p: string): Promise<boolean> {
  return fs.stat(p).then((s) => s.isDirectory(), () => false);
}

/** Follows symlinks: a link whose blob is gone counts as missing. */
export async function isFile(p: string): Promise<boolean> {
  return fs.stat(p).then((s) => s.isFile(), () => false);
}
