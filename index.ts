/**
 * Public library API. The CLI (cli/) is built only on what is exported here.
 */
export { initBackend, backendInfo, currentRuntime, installedBackends, maxThreads, BACKEND_NAMES, PRECISIONS } from './engine/backend';
export type { BackendInfo, BackendName, BackendOptions, PendingWeights, Precision, Runtime } from './engine/backend';
export type { Ops, AttentionInput, EncoderOps, HeadIntervention, HookSite, IdsName } from './engine/ops';
export { encoder, layersFrom, encoderLayer, selfAttention, embeddings } from './engine/bert';
export type { Forward } from './engine/bert';
export { eagerForward, publicView } from './engine/eager';
export { NUMERICS_REVISION, MASK_VALUE } from './engine/numerics';
export { loadModel, EmbeddingModel, planBatches, looksLikeE5, PREFIXES, PrecisionError } from './e5/model';
export type { EmbedOptions, EmbedResult, LoadModelOptions, ModelInfo, Prefix, SimilarityOptions, SimilarityResult } from './e5/model';
export { cosineSimilarity, similarityMatrix } from './e5/similarity';
export { checkFolderAgreement, FolderAgreementError } from './e5/folder_checks';
export { ExplainError, EXPLAIN_MODES, MAX_STEPS, midpoints } from './e5/explain';
export type { Completeness, ExplainableModel, ExplainedText, ExplainErrorCode, ExplainMode, ExplainOptions, ExplainResult, JacobianMethod } from './e5/explain';
export { differentiableOps, embedFrom } from './engine/attribution';
export type { EncoderFunction } from './engine/attribution';
export { BertModel, ActivationCache } from './engine/model';
export type { ForwardOptions, ForwardOutput } from './engine/model';
export {
  allHookNames, defaultHookNames, parseHookName, hookMatcher, blockHook, depthHook, HookContext,
  EMBED_HOOKS, BLOCK_HOOKS, OUTPUT_HOOKS,
} from './engine/hooks';
export type { HookName, HookFilter, HookFn, HookInfo, BlockHook } from './engine/hooks';
export { packPadded, packSequences, InputError } from './engine/rows';
export type { PaddedBatch, PackedInput, Rows } from './engine/rows';
export { meanPool, clsPool, maxPool, l2Normalize, pool } from './engine/pooling';
export { BertTokenizer, TokenizerError } from './tokenizer';
export type { Encoding, EncodedBatch } from './tokenizer';
export { readBertConfig, parseBertConfig, ConfigError } from './weights/config';
export type { BertConfig, HiddenAct } from './weights/config';
export { loadBertParams, planParams, expectedTensors, ParamsError } from './weights/params';
export type { BertParams } from './weights/params';
export { SafetensorsFile, writeSafetensors, writeSafetensorsStreaming, writeSafetensorsStreamingTo, writeSafetensorsTo, SafetensorsError } from './weights/safetensors';
export { Checkpoint } from './weights/checkpoint';
export { resolveModel, ModelFolderError, DEFAULT_MODEL_ID } from './weights/folder';
export type { DownloadProgress, ResolvedModel, ResolveOptions } from './weights/folder';
export { readSentenceTransformersConfig } from './weights/sentence_transformers';
export type { PoolingMode } from './weights/sentence_transformers';
export {
  ablateHeads, attentionViewData, attentionViewFromPatterns, checkHeads, depthEmbeddings, depthHooks, describeBackendInfo,
  headAblationHooks, headIntervention, InspectError, layerwiseSimilarity, meanHeadOutputs, parseHeadList, patchActivations, patchingEffect, patchingHooks,
  AttentionViewError, checkAttentionViewData, renderAttentionHtml, toBertvizJson, paddedLayout, checkExplainViewData, renderExplainHtml,
} from './inspect';
export type {
  AblationMode, AttentionViewData, AttentionViewOptions, BertvizJson, HeadRef, LayerwiseOptions, LayerwiseSimilarity, ModelShape,
  PatchingEffectOptions, PatchingReport, PatchingResult, PatchSpec, PatternsForView, ExplainViewData, PageLink,
} from './inspect';
export { compareArrays, describeMismatch } from './engine/compare';
export type { CompareOptions, CompareResult, Mismatch } from './engine/compare';
// BEIR evaluation: the whole of eval/'s public API (what `e5 eval` is built on).
export * from './eval';
