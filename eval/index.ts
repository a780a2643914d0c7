/**
 * Retrieval evaluation on BEIR data sets: the library API behind `e5 eval`.
 *
 *   const result = await evaluate(embedder, 'path/to/scifact', { split: 'test', k: [10, 100], cacheDir });
 *   console.log(formatEvalTable(result));
 */
export { evaluate, beirScores, parseKList, DEFAULT_K, DEFAULT_SHARD_SIZE, TIE_BREAK } from './evaluate';
export type { EvaluateOptions, EvalResult, QueryResult } from './evaluate';
export { precomputeCorpus } from './precompute';
export type { PrecomputeOptions, PrecomputeResult } from './precompute';
export { formatEvalTable, formatEvalJson, formatTrecRun, formatAblationTable, formatScanTable } from './report';
export { renderScanHtml, SCAN_VIEW_FORMAT } from './scan-html';
export type { TableOptions, JsonOptions } from './report';
export { loadBeir, assembleDataset, readCorpus, readQueries, readQrels } from './beir';
export type { BeirDataset, BeirCorpus, BeirStats, Qrels, LoadBeirOptions } from './beir';
export { e5PassageText, corpusInputs, pyStrip } from './e5_format';
export {
  queryMetrics, meanMetrics, rankRun, compareRanked, ndcgAt, averagePrecisionAt, recallAt, precisionAt, reciprocalRankAt,
  METRIC_NAMES, METRIC_LABELS,
} from './metrics';
export type { Hit, MetricName, QueryMetrics } from './metrics';
export { ExactTopK, exactSearch, idRanks } from './search';
export { CorpusEmbeddingCache, hashTexts, CACHE_FORMAT } from './cache';
export type { CorpusCacheKey } from './cache';
export { BeirFormatError, EvalError } from './errors';
export type { BeirErrorCode, EvalErrorCode } from './errors';
export type { Embedder, EmbedCallOptions, EmbedCallResult, EmbedPrefix } from './embedder';
export { EngineEmbedder, modelFingerprint, embedderId } from './embedder-adapter';
export type { EngineEmbedderOptions, WeightsFingerprint } from './embedder-adapter';
export { evaluateAblation, AblatedEmbedder, headMask, ablationFill, evaluatedQueries, MEAN_REFERENCE, ABLATION_SIDES } from './ablation';
export type { AblationOptions, AblationResult, AblationSide, AblationMode, Intervention, MetricDelta } from './ablation';
export { scanAblations, scanCells, parseScanMetric, ScanCellCache, DEFAULT_CELLS_PER_PASS } from './scan';
export type { ScanKind, ScanOptions, ScanResult, ScanCellResult, ScanMetric, ScanCacheKey } from './scan';
export { evaluateQuerySets } from './evaluate';
export type { HeadEmbedder, HeadShape } from './embedder';
