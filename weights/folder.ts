/**
 * Model folders: turn a model argument — a local folder or a hub id like `intfloat/e5-large-unsupervised`
 * — into a directory holding config.json, safetensors weights and a tokenizer.
 *
 * Order, as in transformers: an existing path is a local folder; otherwise an `org/name` is looked up
 * in the Hugging Face cache (weights/hub.ts has the layout), and downloaded into it when missing or
 * incomplete, unless offline.
 */
import { existsSync, promises as fs, readdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ModelFileError, pathExists, requireRegularFile } from '../util/model_file';
import {
  DEFAULT_ENDPOINT,
  DEFAULT_REVISION,
  DownloadProgress,
  ModelFolderError,
  TOKENIZER_FILES,
  WEIGHTS_FILE,
  WEIGHTS_INDEX_FILE,
  cachedSnapshot,
  checkRevision,
  downloadSnapshot,
  hfHubCacheDir,
  indexShardNames,
  isFile,
  isHubId,
  isOfflineEnv,
} from './hub';
import { pickleFiles } from './pickle';

export { ModelFolderError, hfHubCacheDir } from './hub';
export type { DownloadProgress, ModelFolderErrorKind } from './hub';

export const DEFAULT_MODEL_ID = 'intfloat/e5-large-unsupervised';

export interface ResolvedModel {
  /** The folder to load from: the local folder, or the snapshot in the hub cache. */
  dir: string;
  source: 'local' | 'cache' | 'download';
  repoId?: string;
  /** The revision asked for (branch, tag or sha) and the commit it resolved to. */
  revision?: string;
  commit?: string;
}

export interface ResolveOptions {
  /** Branch, tag or commit sha. Default `main`. */
  revision?: string;
  /** Never touch the network. Default: HF_HUB_OFFLINE. */
  offline?: boolean;
  /** Default: HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
  cacheDir?: string;
  /** Default: HF_ENDPOINT, else https://huggingface.co. */
  endpoint?: string;
  /** Default: HF_TOKEN. Sent as `Authorization: Bearer`. */
  token?: string;
  /**
   * Called with byte counts while files download; the library never draws (the CLI's bar is
   * cli/progress.ts). `false` or absent: no reports. `true` is rejected: there is no built-in bar.
   */
  progress?: boolean | ((p: DownloadProgress) => void);
  /** Repo files to fetch (and require in the cache) besides the defaults. */
  files?: string[];
}

/** Resolve a local folder or hub id to a complete model folder (see the module comment). */
export async function resolveModel(nameOrDir: string, opts: ResolveOptions = {}): Promise<ResolvedModel> {
  const target = classifyModelArg(nameOrDir);
  if (target.kind === 'local') {
    await checkLocalFolder(target.dir);
    return { dir: target.dir, source: 'local' };
  }
  return resolveHubModel(target.repoId, opts);
}

type ModelArg = { kind: 'local'; dir: string } | { kind: 'hub'; repoId: string };

/** A path that exists or is written as one (absolute, ./, ../, ~/) is local; `org/name` otherwise is a hub id. */
export function classifyModelArg(arg: string): ModelArg {
  const expanded = arg === '~' || arg.startsWith('~/') ? path.join(os.homedir(), arg.slice(1)) : arg;
  const writtenAsPath = path.isAbsolute(expanded) || /^\.\.?(\/|$)/.test(arg) || expanded !== arg;
  if (writtenAsPath || existsSync(expanded)) return { kind: 'local', dir: path.resolve(expanded) };
  if (isHubId(arg)) return { kind: 'hub', repoId: arg };
  throw new ModelFolderError(
    `model '${arg}' is neither an existing folder (${path.resolve(arg)} not found) nor a hub id of the form org/name`,
    'not_found',
    path.resolve(arg),
  );
}

async function checkLocalFolder(dir: string): Promise<void> {
  const stat = await fs.stat(dir).catch(() => undefined);
  if (!stat) throw new ModelFolderError(`model folder not found: ${dir}`, 'not_found', dir);
  if (!stat.isDirectory()) throw new ModelFolderError(`model path is not a directory: ${dir}`, 'not_a_directory', dir);
  checkNotSpecialFiles(dir);
  const missing = await missingModelFiles(dir);
  if (missing.length) throw incompleteError(dir, missing);
}

/** A model file that exists but is a FIFO, device or folder is named as such, not reported "missing". */
function checkNotSpecialFiles(dir: string): void {
  for (const f of ['config.json', WEIGHTS_FILE, WEIGHTS_INDEX_FILE, ...TOKENIZER_FILES]) {
    const file = path.join(dir, f);
    if (!pathExists(file)) continue;
    try {
      requireRegularFile(file);
    } catch (e) {
      if (!(e instanceof ModelFileError)) throw e;
      throw new ModelFolderError(e.message, 'invalid', file, [], { cause: e });
    }
  }
}

async function resolveHubModel(repoId: string, opts: ResolveOptions): Promise<ResolvedModel> {
  const revision = opts.revision ?? DEFAULT_REVISION;
  checkRevision(revision);
  if (opts.progress === true) {
    throw new ModelFolderError('progress: true is not supported: pass a function that receives the byte counts (the library draws no bar)', 'bad_argument', repoId);
  }
  const cacheDir = path.resolve(opts.cacheDir ?? hfHubCacheDir());
  const extra = opts.files ?? [];

  const cached = await cachedSnapshot(cacheDir, repoId, revision);
  const missing = cached ? await missingModelFiles(cached.dir, extra) : [];
  if (cached && missing.length === 0) return { dir: cached.dir, source: 'cache', repoId, revision, commit: cached.commit };

  if (opts.offline ?? isOfflineEnv()) {
    const why = opts.offline === undefined ? 'offline (HF_HUB_OFFLINE is set)' : 'offline';
    const what = cached
      ? `the cached snapshot ${cached.dir} is missing ${missing.join(', ')}`
      : `${repoId}@${revision} is not in the cache ${cacheDir}`;
    throw new ModelFolderError(
      `${why}: ${what}; download it with the network on, or pass a local folder`,
      'offline',
      cached?.dir ?? cacheDir,
      cached ? missing : [repoId],
    );
  }

  const snapshot = await downloadSnapshot({
    repoId,
    revision,
    cacheDir,
    endpoint: (opts.endpoint ?? (process.env.HF_ENDPOINT || DEFAULT_ENDPOINT)).replace(/\/+$/, ''),
    token: opts.token ?? (process.env.HF_TOKEN || undefined),
    extraFiles: extra,
    onProgress: opts.progress || undefined,
  });
  const stillMissing = await missingModelFiles(snapshot.dir, extra);
  if (stillMissing.length) throw incompleteError(snapshot.dir, stillMissing);
  return { dir: snapshot.dir, source: 'download', repoId, revision, commit: snapshot.commit };
}

/**
 * The files a model folder lacks, relative to it: config.json; model.safetensors, or the index and
 * every shard it names; tokenizer.json or vocab.txt; and any `extra` files. Symlinks are followed,
 * so a link whose blob is gone counts as missing.
 */
export async function missingModelFiles(dir: string, extra: readonly string[] = []): Promise<string[]> {
  const has = (f: string) => isFile(path.join(dir, f));
  const missing: string[] = [];
  if (!(await has('config.json'))) missing.push('config.json');
  if (await has(WEIGHTS_FILE)) {
    // a single-file checkpoint
  } else if (await has(WEIGHTS_INDEX_FILE)) {
    const index = path.join(dir, WEIGHTS_INDEX_FILE);
    for (const shard of indexShardNames(await fs.readFile(index, 'utf8'), index)) {
      if (!(await has(shard))) missing.push(shard);
    }
  } else {
    missing.push(WEIGHTS_FILE);
  }
  if (!(await anyAsync(TOKENIZER_FILES, has))) missing.push(TOKENIZER_FILES.join(' or '));
  for (const f of extra) if (!(await has(f))) missing.push(f);
  return missing;
}

async function anyAsync<T>(xs: readonly T[], pred: (x: T) => Promise<boolean>): Promise<boolean> {
  for (const x of xs) if (await pred(x)) return true;
  return false;
}

function incompleteError(dir: string, missing: string[]): ModelFolderError {
  const pickle = pickleFiles(listDir(dir))[0];
  const pickleHint =
    missing.includes(WEIGHTS_FILE) && pickle ? ` (found ${pickle}: pickle checkpoints are refused, convert it to safetensors)` : '';
  return new ModelFolderError(
    `model folder ${dir} is incomplete: missing ${missing.join(', ')}${pickleHint}`,
    'incomplete',
    dir,
    missing,
  );
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}
