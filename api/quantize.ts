/**
 * Int8 quantization of a model that `fasternet convert` wrote: a detector (main graph + the box and mask heads
 * embedded in its metadata) or an imagenet classifier. Calibration feeds each graph exactly what inference
 * feeds it: the main graph the model's own preprocessing of each calibration image, the heads the RoIAlign
 * features of the float model's proposals and detections on that image (heads/mask_rcnn.ts intermediates).
 * The output keeps every metadata entry and adds `fasternet.quantized`, so detect/eval/bench/classify load it
 * unchanged and quantizing it again is refused.
 */
import { readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { decodeImage, centerCropTransform } from '../image/decode.ts';
import { UserError } from '../core/errors.ts';
import { isCenterCrop, parseMetadata, QUANTIZED_KEY, readModelParts, type ModelMetadata } from '../runtime/metadata.ts';
import { createSession, runSession, type Session } from '../runtime/session.ts';
import { decodeModel, encodeModel, foldBatchNorms, planQuantization, qdqProblems, quantizeGraph, withOutputs, type GraphReport, type QuantPlan, type Range } from '../runtime/quantize.ts';
import { rangeCollector, type CalibrationMethod } from '../runtime/calibrate.ts';
import type { FloatTensor } from '../core/tensor.ts';
import { assembleDetector, runDetector, type Detector } from '../heads/mask_rcnn.ts';
import { checkDetectorConfig } from '../heads/config.ts';
import type ort from 'onnxruntime-node';

export { QUANTIZED_KEY };
const HEAD_KEYS = { box: 'fasternet.box_head_onnx', mask: 'fasternet.mask_head_onnx' } as const;
const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.bmp', '.tif', '.tiff', '.gif']);

/** Default calibration set size: ORT's and OpenVINO's guides use 100-300 images; 100 keeps minutes down. */
export const DEFAULT_CALIB_IMAGES = 100;
/**
 * Default range method, chosen by accuracy of the bundled model on canvases_val (README, int8 section):
 * entropy 0.514 box / 0.512 mask AP, percentile 0.512 / 0.511, minmax 0.508 / 0.508 (float 0.510 / 0.507).
 */
export const DEFAULT_METHOD: CalibrationMethod = 'entropy';

export interface QuantizeOptions {
  calibDir: string;
  calibImages?: number;
  method?: CalibrationMethod;
  keepFp32?: RegExp[];
  /** Keep stem and predictors float32 (default true). */
  keepSensitive?: boolean;
  threads?: number;
  /** Called after each calibration image: pass (1 or 2 of passes), done, total. */
  progress?: (pass: number, passes: number, done: number, total: number) => void;
}

export interface QuantizeReport {
  model: string;
  arch: string;
  flavor: string;
  method: CalibrationMethod;
  calibImages: string[];
  graphs: Record<string, GraphReport>;
}

/** The calibration images in `dir`, sorted by name, first `limit`; refuses an unreadable or empty folder. */
export async function calibrationImages(dir: string, limit = DEFAULT_CALIB_IMAGES): Promise<string[]> {
  let names: string[];
  try {
    if (!(await stat(dir)).isDirectory()) throw new UserError(`--calib ${dir} is not a folder of images`);
    names = await readdir(dir);
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`--calib ${dir}: cannot read the folder`);
  }
  const files = names.filter((n) => IMAGE_EXTENSIONS.has(extname(n).toLowerCase())).sort().map((n) => join(dir, n));
  if (files.length === 0) throw new UserError(`--calib ${dir} holds no images (${[...IMAGE_EXTENSIONS].join(' ')})`);
  return files.slice(0, limit);
}

/** Refuses what cannot be quantized, with one line naming the file. */
function checkQuantizable(props: Record<string, string>, what: string): ModelMetadata {
  if (props[QUANTIZED_KEY] !== undefined) throw new UserError(`${what} is already quantized (int8); quantize its float model instead`);
  return parseMetadata(props, what);
}

export interface GraphJob {
  key: 'main' | 'box' | 'mask';
  bytes: Uint8Array;
  plan: QuantPlan;
  input: string;
  session?: Session;
}

function planFor(key: GraphJob['key'], bytes: Uint8Array, input: string, o: QuantizeOptions): GraphJob {
  const imageInput = key === 'main' ? input : undefined;
  const m = decodeModel(bytes);
  const folded = foldBatchNorms(m);
  // The mask logits are only thresholded at probability 0.5: int8 costs them no mask AP (README), and in
  // float32 they would need their 1024-channel input dequantized (a third of the int8 mask head's time).
  const plan = planQuantization(m, { keepFp32: o.keepFp32, keepSensitive: o.keepSensitive, imageInput, int8Predictors: key === 'mask' });
  return { key, bytes: folded.length ? encodeModel(m) : bytes, input, plan: { ...plan, folded } };
}

/** `s` with every run's float feeds and outputs also handed to `record` (ORT tensors as plain ones). */
function recordingSession(s: Session, record: (feeds: Record<string, FloatTensor>, outs: Record<string, FloatTensor>) => void): Session {
  const plain = (ts: Record<string, ort.Tensor>): Record<string, FloatTensor> => {
    const r: Record<string, FloatTensor> = {};
    for (const [k, v] of Object.entries(ts)) if (v.type === 'float32') r[k] = { shape: [...v.dims], data: v.data as Float32Array };
    return r;
  };
  return new Proxy(s, {
    get(target, prop) {
      if (prop === 'run') {
        return async (feeds: Record<string, ort.Tensor>, ...rest: unknown[]) => {
          const outs = await (target.run as (...a: unknown[]) => Promise<Record<string, ort.Tensor>>)(feeds, ...rest);
          record(plain(feeds), plain(outs));
          return outs;
        };
      }
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** A model's graphs with their quantization plans and calibrated ranges. */
export interface Calibration {
  modelPath: string;
  meta: ModelMetadata;
  props: Record<string, string>;
  files: string[];
  method: CalibrationMethod;
  graphs: Array<{ key: GraphJob['key']; bytes: Uint8Array; plan: QuantPlan; ranges: Map<string, Range> }>;
}

/** What one session run of the float model saw and made during calibration (feeds, all outputs). */
export type RunObserver = (graph: GraphJob['key'], feeds: Record<string, FloatTensor>, outputs: Record<string, FloatTensor>) => void;

/** Quantizes the model at `modelPath`; returns the new file's bytes and the report. */
export async function quantizeModel(modelPath: string, o: QuantizeOptions): Promise<{ bytes: Uint8Array; report: QuantizeReport }> {
  return quantizeCalibrated(await calibrateModel(modelPath, o));
}

/** Plans every graph of the model and calibrates the planned tensors over the images of `o.calibDir`. */
export async function calibrateModel(modelPath: string, o: QuantizeOptions & { onRun?: RunObserver }): Promise<Calibration> {
  const { props, graphBytes } = await readModelParts(modelPath);
  const meta = checkQuantizable(props, modelPath);
  const files = await calibrationImages(o.calibDir, o.calibImages);
  const method = o.method ?? DEFAULT_METHOD;
  const detector = meta.flavor === 'torchvision' || meta.flavor === 'mmdet';
  if (!detector && !(meta.flavor === 'imagenet' && isCenterCrop(meta.preprocess))) {
    throw new UserError(`${modelPath}: cannot quantize a '${meta.flavor}' model (detectors and imagenet classifiers only)`);
  }
  const jobs: GraphJob[] = [planFor('main', graphBytes, meta.input, o)];
  if (detector) {
    for (const key of ['box', 'mask'] as const) {
      if (!props[HEAD_KEYS[key]]) throw new UserError(`${modelPath} lacks its embedded ${key} head`);
      jobs.push(planFor(key, Buffer.from(props[HEAD_KEYS[key]], 'base64'), 'rois', o));
    }
  }
  for (const j of jobs) j.session = await createSession(withOutputs(j.bytes, j.plan.tensors), { threads: o.threads, memArena: false });

  // Each pass runs the float model over the images exactly as inference does, with the calibration graphs
  // (same outputs plus the planned tensors) in place of its three sessions; a recorder hands what each
  // session saw and made to that graph's collector.
  const collectors = new Map(jobs.map((j) => [j.key, rangeCollector(j.plan.tensors, method)]));
  const passes = collectors.get('main')!.passes;
  const recorded = (job: GraphJob): Session => recordingSession(job.session!, (feeds, outs) => {
    collectors.get(job.key)!.observe({ ...outs, ...feeds });
    o.onRun?.(job.key, feeds, outs);
  });
  let det: Detector | undefined;
  if (detector) {
    const cfg = checkDetectorConfig(meta.extra?.detector, modelPath);
    det = assembleDetector(meta, cfg, jobs.map(recorded), 1);
  }
  const classifier = detector ? undefined : recorded(jobs[0]);
  const pre = meta.preprocess;
  try {
    for (let pass = 1; pass <= passes; pass++) {
      o.progress?.(pass, passes, 0, files.length);
      for (let i = 0; i < files.length; i++) {
        const img = await decodeImage(files[i], { autoOrient: true });
        if (det) {
          await runDetector(det, img);
        } else if (isCenterCrop(pre)) {
          const x = centerCropTransform(img, pre);
          await runSession(classifier!, { [meta.input]: { shape: [1, ...x.shape], data: x.data } });
        }
        o.progress?.(pass, passes, i + 1, files.length);
      }
      for (const job of jobs) {
        try {
          collectors.get(job.key)!.endPass();
        } catch (err) {
          // A head that never ran (no proposals or detections on any image) has nothing to calibrate on.
          throw new UserError(`--calib ${o.calibDir}: the ${job.key} graph got no input on these images (${(err as Error).message}); use more or other images`);
        }
      }
    }
  } finally {
    for (const j of jobs) await j.session?.release();
  }

  return {
    modelPath, meta, props, files, method,
    graphs: jobs.map((j) => ({ key: j.key, bytes: j.bytes, plan: j.plan, ranges: collectors.get(j.key)!.ranges() })),
  };
}

/** The quantized model file for a calibration, checked structurally (a failure here is a bug, not bad input). */
export function quantizeCalibrated(c: Calibration): { bytes: Uint8Array; report: QuantizeReport } {
  const { modelPath, meta, props, files, method } = c;
  const detector = c.graphs.length === 3;
  const report: QuantizeReport = { model: modelPath, arch: meta.arch, flavor: meta.flavor, method, calibImages: files, graphs: {} };
  const out = new Map<string, Uint8Array>();
  for (const job of c.graphs) {
    // The detector's FPN levels stay uint8: RoIAlign reads the bytes (heads/roi_align.ts).
    const fpn = detector && job.key === 'main' ? meta.outputs.filter((v) => /^fpn_\d+$/.test(v)) : [];
    const q = quantizeGraph(job.bytes, job.plan, job.ranges, { uint8Outputs: fpn });
    const problems = qdqProblems(q.bytes);
    if (problems.length) throw new Error(`quantized ${job.key} graph is malformed: ${problems.slice(0, 3).join('; ')}`);
    out.set(job.key, q.bytes);
    report.graphs[job.key] = q.report;
  }
  const jobs = c.graphs;
  const newProps: Record<string, string> = { ...props };
  if (detector) {
    newProps[HEAD_KEYS.box] = Buffer.from(out.get('box')!).toString('base64');
    newProps[HEAD_KEYS.mask] = Buffer.from(out.get('mask')!).toString('base64');
  }
  newProps[QUANTIZED_KEY] = JSON.stringify({
    format: 'qdq-u8s8', weights: 'int8 symmetric per channel', activations: 'uint8 asymmetric per tensor', method, calibImages: files.length,
    keptFp32: Object.fromEntries(jobs.map((j) => [j.key, report.graphs[j.key].kept.map((k) => k.name)])),
    ...(report.graphs.main?.uint8Outputs ? { uint8Outputs: report.graphs.main.uint8Outputs } : {}),
  });
  return { bytes: graphBytesWithProps(out.get('main')!, newProps), report };
}

/** A ModelProto's bytes (without metadata) with `props` as its metadata_props, in insertion order. */
function graphBytesWithProps(graphBytes: Uint8Array, props: Record<string, string>): Uint8Array {
  const m = decodeModel(graphBytes);
  m.metadataProps = Object.entries(props).map(([key, value]) => ({ key, value }));
  return encodeModel(m);
}
