/**
 * Public library API. The CLI (cli/) is built only on what is exported here.
 */
export { initBackend, backendInfo, currentRuntime, installedBackends, BACKEND_NAMES } from './engine/backend';
export type { BackendInfo, BackendName, BackendOptions, Runtime } from './engine/backend';
export type { Ops, AttentionInput } from './engine/ops';
export { loadModel, EmbeddingModel, planBatches, looksLikeE5, PREFIXES } from './e5/model';
export type { EmbedOptions, EmbedResult, LoadModelOptions, ModelInfo, Prefix, SimilarityOptions, SimilarityResult } from './e5/model';
export { cosineSimilarity, similarityMatrix } from './e5/similarity';
export { checkFolderAgreement, FolderAgreementError } from './e5/folder_checks';
export { BertModel, ActivationCache } from './engine/model';
export type { ForwardOptions, ForwardOutput } from './engine/model';
export {
  allHookNames, defaultHookNames, parseHookName, hookMatcher, blockHook, HookContext,
  EMBED_HOOKS, BLOCK_HOOKS, OUTPUT_HOOKS,
} from './engine/hooks';
export type { HookName, HookFilter, HookFn, HookInfo, BlockHook } from './engine/hooks';
export { packPadded, packSequences, InputError } from './engine/rows';
export type { PaddedBatch, PackedInput, Rows } from './engine/rows';
export { meanPool, clsPool, maxPool, l2Normalize } from './engine/pooling';
export { BertTokenizer, TokenizerError } from './tokenizer';
export type { Encoding, EncodedBatch } from './tokenizer';
export { readBertConfig, parseBertConfig, ConfigError } from './weights/config';
export type { BertConfig, HiddenAct } from './weights/config';
export { loadBertParams, planParams, expectedTensors, ParamsError } from './weights/params';
export type { BertParams } from './weights/params';
export { SafetensorsFile, writeSafetensors, writeSafetensorsStreaming, SafetensorsError } from './weights/safetensors';
export { Checkpoint } from './weights/checkpoint';
export { resolveModel, ModelFolderError, DEFAULT_MODEL_ID } from './weights/folder';
export type { DownloadProgress, ResolvedModel, ResolveOptions } from './weights/folder';
export { readSentenceTransformersConfig } from './weights/sentence_transformers';
export type { PoolingMode } from './weights/sentence_transformers';
export {
  ablateHeads, attentionViewData, attentionViewFromPatterns, checkHeads, depthEmbeddings, depthHooks, describeBackendInfo,
  headAblationHooks, InspectError, layerwiseSimilarity, meanHeadOutputs, parseHeadList, patchActivations, patchingEffect, patchingHooks,
  AttentionViewError, checkAttentionViewData, renderAttentionHtml, toBertvizJson,
} from './inspect';
export type {
  AblationMode, AttentionViewData, AttentionViewOptions, BertvizJson, HeadRef, LayerwiseOptions, LayerwiseSimilarity, ModelShape,
  PatchingEffectOptions, PatchingReport, PatchingResult, PatchSpec, PatternsForView,
} from './inspect';
export { compareArrays, describeMismatch } from './engine/compare';
export type { CompareOptions, CompareResult, Mismatch } from './engine/compare';
export {
  evaluate, precomputeCorpus, formatEvalTable, formatEvalJson, loadBeir, parseKList, EngineEmbedder, modelFingerprint, BeirFormatError, EvalError,
} from './eval';
export type { EvalResult, EvaluateOptions, PrecomputeOptions, PrecomputeResult, BeirDataset, Embedder } from './eval';
