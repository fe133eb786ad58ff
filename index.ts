/** Public API of the fasternet package: detection, COCO evaluation, masks, checkpoints, classification. */
export { detect, closeDetectWorkers, releaseDetectModels, getDetector, type DetectOptions, type DetectResult, type Detection, type ImageInput } from './heads/detect.ts';
export { loadDetector, runDetector, releaseDetector, type Detector, type RawDetections } from './heads/mask_rcnn.ts';
export { convertTorchvisionDetector } from './io/convert_detection.ts';
export type { DetectorConfig } from './heads/config.ts';

export { evaluate, evaluateAll, loadGt, loadRes, cocoEval, report, type EvalResult, type EvaluateOptions, type IouType, type ReportInput } from './eval/index.ts';
export * as mask from './postprocess/mask.ts';

export { loadCheckpoint, parseCheckpoint, checkKeys, stripPrefix, type Checkpoint } from './io/checkpoint.ts';
export { decodeImage, type DecodeOptions } from './io/image.ts';
export { classifyImages, type ClassifyResult } from './cli/classify.ts';
export { imagenetModel, classifierGraph, featuresGraph } from './backbones/model.ts';
export { UserError } from './cli/errors.ts';
export { annotate, type AnnotateOptions } from './io/annotate.ts';
export { DEFAULT_MODEL_PATH } from './heads/detect.ts';
