/**
 * Headless Chromium (the Debian `chromium` package) without a driver: load a file, let its JS run
 * (`--virtual-time-budget`), then either print the DOM (`--dump-dom`) or save a screenshot. Console
 * messages come back from stderr (`--enable-logging=stderr` logs each as `INFO:CONSOLE...] "msg"`),
 * which covers uncaught errors and CSP violations. Plus a tiny PNG decoder to check screenshots.
 */
import { execFile } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { inflateSync } from 'node:zlib';

/** `$CHROMIUM` or the Debian path; undefined when not installed. */
export function findChromium(): string | undefined {
  const candidate = process.env.CHROMIUM ?? '/usr/bin/chromium';
  return existsSync(candidate) ? candidate : undefined;
}

export interface ChromiumResult {
  stdout: string;
  /** Text of every console message the page produced (log, warn, error, uncaught, CSP). */
  console: string[];
}

export interface ChromiumOptions {
  /** Appended to the file URL, e.g. `#layer=2&heads=1`. */
  hash?: string;
  virtualTimeBudgetMs?: number;
  timeoutMs?: number;
}

const BASE_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
  '--hide-scrollbars',
  '--enable-logging=stderr',
  '--v=0',
];

async function runChromium(chromium: string, file: string, mode: string[], opts: ChromiumOptions): Promise<ChromiumResult> {
  const userDataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'chromium-profile-'));
  const args = [
    ...BASE_FLAGS,
    `--user-data-dir=${userDataDir}`,
    `--virtual-time-budget=${opts.virtualTimeBudgetMs ?? 5000}`,
    ...mode,
    pathToFileURL(file).href + (opts.hash ?? ''),
  ];
  try {
    const { stdout, stderr } = await new Promise<{ stdout: string; stderr: string }>((resolve, reject) => {
      execFile(chromium, args, { timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`${chromium} ${mode.join(' ')} failed: ${err.message}\n${stderr.slice(-2000)}`));
        else resolve({ stdout, stderr });
      });
    });
    return { stdout, console: consoleMessages(stderr) };
  } finally {
    await fs.rm(userDataDir, { recursive: true, force: true });
  }
}

export function consoleMessages(stderr: string): string[] {
  return [...stderr.matchAll(/:CONSOLE[^\]]*\] "(.*)", source: /g)].map((m) => m[1]);
}

/** The DOM after scripts ran, serialized as HTML (stdout). */
export function dumpDom(chromium: string, file: string, opts: ChromiumOptions = {}): Promise<ChromiumResult> {
  return runChromium(chromium, file, ['--dump-dom'], opts);
}

export function screenshot(chromium: string, file: string, png: string, width: number, height: number, opts: ChromiumOptions = {}): Promise<ChromiumResult> {
  return runChromium(chromium, file, [`--screenshot=${png}`, `--window-size=${width},${height}`], opts);
}

// ---------------------------------------------------------------------------------------------
// PNG: just enough to read Chromium's screenshots (8-bit RGB/RGBA, not interlaced)

export interface DecodedPng {
  width: number;
  height: number;
  /** Bytes per pixel: 3 (RGB) or 4 (RGBA). */
  channels: number;
  pixels: Uint8Array; // height * width * channels
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export function decodePng(buf: Buffer): DecodedPng {
  if (!buf.subarray(0, 8).equals(PNG_SIGNATURE)) throw new Error('not a PNG (bad signature)');
  let width = 0, height = 0, channels = 0;
  const idat: Buffer[] = [];
  for (let pos = 8; pos + 8 <= buf.length; ) {
    const len = buf.readUInt32BE(pos);
    const type = buf.toString('latin1', pos + 4, pos + 8);
    const data = buf.subarray(pos + 8, pos + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      const [bitDepth, colorType, , , interlace] = data.subarray(8, 13);
      if (bitDepth !== 8 || (colorType !== 2 && colorType !== 6) || interlace !== 0) {
        throw new Error(`unsupported PNG: bit depth ${bitDepth}, colour type ${colorType}, interlace ${interlace}`);
      }
      channels = colorType === 6 ? 4 : 3;
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    pos += 12 + len; // length, type, data, crc
  }
  return { width, height, channels, pixels: unfilter(inflateSync(Buffer.concat(idat)), width, height, channels) };
}

/** Undo the per-scanline filters (PNG spec §9: None, Sub, Up, Average, Paeth). */
function unfilter(raw: Buffer, width: number, height: number, bpp: number): Uint8Array {
  const stride = width * bpp;
  const out = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = y * (stride + 1) + 1;
    const row = y * stride, prev = row - stride;
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? out[row + x - bpp] : 0;
      const b = y > 0 ? out[prev + x] : 0;
      const c = x >= bpp && y > 0 ? out[prev + x - bpp] : 0;
      let pred = 0;
      if (filter === 1) pred = a;
      else if (filter === 2) pred = b;
      else if (filter === 3) pred = (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else if (filter !== 0) throw new Error(`bad PNG filter ${filter} on row ${y}`);
      out[row + x] = (raw[src + x] + pred) & 0xff;
    }
  }
  return out;
}
