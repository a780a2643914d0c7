/**
 * A fake Hugging Face hub on 127.0.0.1 for download tests: the endpoints @huggingface/hub 2.17 calls,
 * with the headers it reads. It records every request and can inject faults per file.
 *
 *   GET  /api/models/{org}/{name}/revision/{rev}     model info ({ sha })
 *   GET  /api/models/{org}/{name}/tree/{rev}         file listing (oid, size, lfs)
 *   POST /api/models/{org}/{name}/paths-info/{rev}   per-path info (oid, lfs, lastCommit)
 *   GET  /{org}/{name}/resolve/{rev}/{path}          file bytes; honours `Range: bytes=a-b`
 */
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeFile {
  path: string;
  data: Buffer;
  /** Served as an LFS file: etag = sha256 of the content (else the git blob oid). */
  lfs?: boolean;
}

export interface FakeRepo {
  id: string; // org/name
  commit: string; // 40 hex, what `main` points at
  files: FakeFile[];
  /** Requests must carry `Authorization: Bearer <token>` (else 401, like a gated/private repo). */
  token?: string;
}

/** Applies to full-body GETs of `path` (not the `bytes=0-0` probes). `times` defaults to 1. */
export interface Fault {
  path: string;
  kind:
    | 'status' // answer `status` with a JSON error
    | 'cut' // send the Content-Length header and half the body, then destroy the socket
    | 'short'; // chunked encoding, half the body, then a clean end (no length to catch it)
  status?: number;
  times?: number;
}

export interface RecordedRequest {
  method: string;
  url: string;
  authorization?: string;
}

export interface FakeHub {
  url: string;
  requests: RecordedRequest[];
  faults: Fault[];
  close(): Promise<void>;
}

export function gitBlobOid(data: Uint8Array): string {
  return createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The blob name the hub cache uses for a file. */
export function etagOf(f: FakeFile): string {
  return f.lfs ? sha256(f.data) : gitBlobOid(f.data);
}

export async function startFakeHub(repos: FakeRepo[]): Promise<FakeHub> {
  const requests: RecordedRequest[] = [];
  const faults: Fault[] = [];
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization });
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      try {
        route(repos, faults, req, res, body);
      } catch (e) {
        sendJson(res, 500, { error: `fake hub crashed: ${(e as Error).message}` });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    faults,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function route(repos: FakeRepo[], faults: Fault[], req: http.IncomingMessage, res: http.ServerResponse, body: string): void {
  const url = new URL(req.url ?? '/', 'http://x');
  const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  const api = parts[0] === 'api' && parts[1] === 'models';
  const [org, name] = api ? parts.slice(2, 4) : parts.slice(0, 2);
  const repo = repos.find((r) => r.id === `${org}/${name}`);
  if (!repo) return sendJson(res, 404, { error: 'Repository not found' }, { 'X-Error-Code': 'RepoNotFound' });
  if (repo.token && req.headers.authorization !== `Bearer ${repo.token}`) {
    return sendJson(res, 401, { error: 'Invalid credentials in Authorization header' });
  }
  const [action, rev] = api ? parts.slice(4, 6) : parts.slice(2, 4);
  if (rev !== 'main' && rev !== 'HEAD' && rev !== repo.commit) {
    return sendJson(res, 404, { error: `Invalid rev id: ${rev}` }, { 'X-Error-Code': 'RevisionNotFound' });
  }
  const rest = (api ? parts.slice(6) : parts.slice(4)).join('/');

  if (api && action === 'revision' && req.method === 'GET') {
    return sendJson(res, 200, {
      _id: 'fake',
      id: repo.id,
      sha: repo.commit,
      private: !!repo.token,
      gated: false,
      downloads: 0,
      likes: 0,
      lastModified: '2024-01-01T00:00:00.000Z',
      siblings: repo.files.map((f) => ({ rfilename: f.path })),
    });
  }
  if (api && action === 'tree' && req.method === 'GET') return sendJson(res, 200, treeEntries(repo, rest));
  if (api && action === 'paths-info' && req.method === 'POST') {
    const wanted = (JSON.parse(body) as { paths: string[] }).paths;
    const entries = repo.files.filter((f) => wanted.includes(f.path)).map((f) => fileEntry(f, true));
    return sendJson(res, 200, entries);
  }
  if (!api && action === 'resolve' && req.method === 'GET') {
    const file = repo.files.find((f) => f.path === rest);
    if (!file) return sendJson(res, 404, { error: 'Entry not found' }, { 'X-Error-Code': 'EntryNotFound' });
    return sendFile(repo, file, faults, req, res);
  }
  sendJson(res, 404, { error: `fake hub: no route for ${req.method} ${url.pathname}` });
}

/** Directories and files under `prefix`, recursively (the tests always ask recursive=true). */
function treeEntries(repo: FakeRepo, prefix: string): object[] {
  const inside = repo.files.filter((f) => prefix === '' || f.path.startsWith(`${prefix}/`));
  const dirs = new Set<string>();
  for (const f of inside) {
    const segs = f.path.split('/');
    for (let i = 1; i < segs.length; i++) dirs.add(segs.slice(0, i).join('/'));
  }
  return [
    ...[...dirs].map((d) => ({ type: 'directory', oid: gitBlobOid(Buffer.from(d)), size: 0, path: d })),
    ...inside.map((f) => fileEntry(f, false)),
  ];
}

function fileEntry(f: FakeFile, expand: boolean): object {
  const entry: Record<string, unknown> = { type: 'file', oid: gitBlobOid(f.data), size: f.data.length, path: f.path };
  if (f.lfs) entry.lfs = { oid: sha256(f.data), size: f.data.length, pointerSize: 134 };
  // A *different* commit per file, like the real hub's "last commit touching this file": a client
  // that names snapshots after it (instead of the revision's commit) would scatter the files.
  if (expand) entry.lastCommit = { id: sha256(Buffer.from(f.path)).slice(0, 40), title: 'edit', date: '2024-01-01T00:00:00.000Z' };
  return entry;
}

function sendFile(repo: FakeRepo, f: FakeFile, faults: Fault[], req: http.IncomingMessage, res: http.ServerResponse): void {
  const headers: Record<string, string> = {
    'Content-Type': 'application/octet-stream',
    'Accept-Ranges': 'bytes',
    ETag: `"${gitBlobOid(f.data)}"`,
    'X-Repo-Commit': repo.commit,
  };
  if (f.lfs) headers['X-Linked-ETag'] = `"${sha256(f.data)}"`;
  if (f.lfs) headers['X-Linked-Size'] = String(f.data.length);

  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  if (range) {
    const start = Number(range[1]);
    const end = Math.min(range[2] === '' ? f.data.length - 1 : Number(range[2]), f.data.length - 1);
    const chunk = f.data.subarray(start, end + 1);
    res.writeHead(206, { ...headers, 'Content-Range': `bytes ${start}-${end}/${f.data.length}`, 'Content-Length': chunk.length });
    res.end(chunk);
    return;
  }

  const fault = faults.find((x) => x.path === f.path && (x.times ?? 1) > 0);
  if (fault) fault.times = (fault.times ?? 1) - 1;
  const half = f.data.subarray(0, Math.floor(f.data.length / 2));
  switch (fault?.kind) {
    case 'status':
      return sendJson(res, fault.status ?? 500, { error: 'Internal Error - We\'re working hard to fix this as soon as possible!' });
    case 'cut':
      res.writeHead(200, { ...headers, 'Content-Length': f.data.length });
      res.write(half, () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    case 'short':
      res.writeHead(200, headers); // no Content-Length: chunked, ends cleanly
      res.end(half);
      return;
    default:
      res.writeHead(200, { ...headers, 'Content-Length': f.data.length });
      res.end(f.data);
  }
}

function sendJson(res: http.ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(value);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}
