/** Public API of the fasternet package: detection, COCO evaluation, masks, checkpoints, classification. */
export { detect, closeDetectWorkers, releaseDetectModels, getDetector, type DetectOptions, type DetectResult, type Detection, type ImageInput } from './api/detect.ts';
export { loadDetector, runDetector, releaseDetector, type Detector, type RawDetections } from './heads/mask_rcnn.ts';
export { convertTorchvisionDetector } from './convert/detection.ts';
export type { DetectorConfig } from './heads/config.ts';

export { evaluate, evaluateAll, loadGt, loadRes, cocoEval, type EvalResult, type EvaluateOptions, type IouType } from './eval/index.ts';
export * as mask from './postprocess/mask.ts';

export { loadCheckpoint, parseCheckpoint, checkKeys, stripPrefix, type Checkpoint } from './checkpoint/load.ts';
export { decodeImage, type DecodeOptions } from './image/decode.ts';
export { classifyImages, type ClassifyResult } from './cli/classify.ts';
export { imagenetModel, classifierGraph, featuresGraph } from './backbones/model.ts';
export { UserError } from './core/errors.ts';
export { annotate, type AnnotateOptions } from './api/annotate.ts';
export { DEFAULT_MODEL_PATH } from './api/detect.ts';
