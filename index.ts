/** Public API of the fasternet package. */
export { detect, closeDetectWorkers, releaseDetectModels, getDetector, type DetectOptions, type DetectResult, type Detection, type ImageInput } from './heads/detect.ts';
export { loadDetector, runDetector, releaseDetector, type Detector, type RawDetections } from './heads/mask_rcnn.ts';
export { convertTorchvisionDetector } from './io/convert_detection.ts';
export type { DetectorConfig } from './heads/config.ts';
