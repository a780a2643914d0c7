/**
 * `e5 embed --shard I/N`: the inputs are read in blocks of --chunk-size (the unit `e5 embed` hands
 * the library in one call), and block b is embedded by shard b mod N. Each shard's rows go through
 * the very same library calls, with the same batch-mates, as in a run over all the inputs, so the
 * joined output (`e5 merge`) equals that run bit for bit on every backend. Each output gets a
 * sidecar (shard-manifest.ts) with the rows' global indexes, the input fingerprint and the settings.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { Command } from 'commander';
import { modelFingerprint } from '../index';
import type { EmbeddingModel } from '../index';
import { usageError } from './common';
import { isStdout, outputTarget, removeStaleTempFiles } from './output';
import type { EmbedFormat, RunSettings } from './embedding-writers';
import type { InputRecord } from './input';
import {
  fileSha256, InputFingerprint, manifestPath, removeManifest, SHARD_FORMAT, shardRanges, shardRecords, SHARDED_FORMATS, ShardedFormat, writeManifest,
} from './shard-manifest';
import { ownedCount, resolveShard, shardLabel, ShardOptions, ShardSpec, ShardUsageError } from './shard';

export class EmbedShard {
  private readonly fp = new InputFingerprint();
  constructor(readonly spec: ShardSpec, private readonly output: string, private readonly format: ShardedFormat, private readonly blockSize: number) {}

  /** Which shard, from the options or the scheduler's environment; undefined for all the inputs. */
  static resolve(cmd: Command, o: ShardOptions & { output?: string; chunkSize: number }, format: EmbedFormat): EmbedShard | undefined {
    let spec: ShardSpec | undefined;
    try {
      spec = resolveShard(o);
    } catch (e) {
      if (e instanceof ShardUsageError) usageError(cmd, e.message);
      throw e;
    }
    if (!spec) return undefined;
    const why = `shard ${shardLabel(spec)} (${spec.source})`;
    if (!o.output || isStdout(o.output)) usageError(cmd, `${why} writes a file for 'e5 merge': give --output FILE (not stdout)`);
    if (outputTarget(o.output).kind !== 'file') usageError(cmd, `${why} writes a file for 'e5 merge': --output ${o.output} is not a regular file`);
    if (!(SHARDED_FORMATS as readonly string[]).includes(format)) usageError(cmd, `${why}: --format ${format} cannot be merged; use ${SHARDED_FORMATS.join(', ')}`);
    return new EmbedShard(spec, o.output, format as ShardedFormat, o.chunkSize);
  }

  /**
   * Call before writing: a sidecar left from an earlier run must not describe the new file, and the
   * sidecar temp files of a killed run go. Returns the names of those removed.
   */
  start(): string[] {
    removeManifest(this.output);
    return removeStaleTempFiles(manifestPath(this.output));
  }

  /** This shard's records; every record passes through the input fingerprint. */
  records(all: AsyncIterable<InputRecord>): AsyncIterable<InputRecord> {
    return shardRecords(all, this.spec, this.blockSize, this.fp);
  }

  /** How many of `total` inputs this shard embeds. */
  owned(total: number | undefined): number | undefined {
    return total === undefined ? undefined : ownedCount(this.spec, total, this.blockSize);
  }

  /** After the data file is committed: the sidecar `e5 merge` reads. */
  finish(m: EmbeddingModel, settings: RunSettings, rows: number): void {
    const total = this.fp.count;
    const ranges = shardRanges(this.spec, total, this.blockSize);
    writeManifest(this.output, {
      format: SHARD_FORMAT,
      shard: { index: this.spec.index, count: this.spec.count, block_size: this.blockSize },
      input: { count: total, sha256: this.fp.digest() },
      rows,
      ranges,
      output: { file: path.basename(this.output), format: this.format, bytes: fs.statSync(this.output).size, sha256: fileSha256(this.output) },
      model_sha256: modelFingerprint(m.info.dir).sha256,
      settings,
    });
  }
}
