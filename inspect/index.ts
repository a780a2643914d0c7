/** The inspection toolkit: analysis helpers on runWithCache/runWithHooks, the HTML viewer, the bertviz export. */
export {
  ablateHeads, attentionViewData, attentionViewFromPatterns, checkHeads, depthEmbeddings, depthHooks, describeBackendInfo,
  headAblationHooks, headIntervention, InspectError, layerwiseSimilarity, meanHeadOutputs, parseHeadList, patchActivations, patchingEffect, patchingHooks,
} from './analysis';
export type {
  AblationMode, AnalysisInput, AttentionViewOptions, HeadRef, LayerwiseOptions, LayerwiseSimilarity, ModelShape, PatchingEffectOptions,
  PatchingReport, PatchingResult, PatchSpec, PatternsForView,
} from './analysis';
export { AttentionViewError, checkAttentionViewData, renderAttentionHtml, VIEW_FORMAT } from './html';
export type { AttentionViewData, AttentionViewErrorCode, PageLink } from './html';
export { checkExplainViewData, EXPLAIN_VIEW_FORMAT, renderExplainHtml } from './explain-html';
export type { ExplainViewData } from './explain-html';
export { shortestFloat32, toBertvizJson } from './bertviz';
export { paddedLayout } from './layout';
export type { PaddedTensor } from './layout';
export type { BertvizJson } from './bertviz';
