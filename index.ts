/**
 * Public API of the fasternet package: the functions a user calls (detect, annotate, evaluate, convert,
 * classify, checkpoints, masks) and their types. Stage internals stay importable from their own modules.
 */
export { detect, release, DEFAULT_MODEL_PATH, type DetectOptions, type DetectResult, type Detection, type ImageInput } from './api/detect.ts';
export { annotate, type AnnotateOptions } from './api/annotate.ts';
export { classifyImages, type ClassifyResult } from './api/classify.ts';
export { decodeImage, type DecodeOptions } from './image/decode.ts';
export { convertCheckpoint, type ConvertOptions } from './convert/index.ts';
export type { DetectorConfig } from './heads/config.ts';
export { evaluate, evaluateAll, loadGt, loadRes, report, type EvalResult, type EvaluateOptions, type IouType, type ReportInput } from './eval/index.ts';
export * as mask from './postprocess/mask.ts';
export { loadCheckpoint, parseCheckpoint, type Checkpoint } from './checkpoint/load.ts';
export { UserError } from './core/errors.ts';
