/**
 * The library and model files as an attacker or a careless caller would use them (issue 13, items 1, 5, 6):
 * edited model metadata (missing fields, wrong types, sizes that drive allocations, empty anchors, heads
 * swapped, a non-numeric mask threshold), and bad arguments to detect() and evaluate(). Each is refused at
 * load / call time with one UserError line naming the field or parameter.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { FLAVORS } from '../convert/index.ts';
import { loadDetector, releaseDetector } from '../heads/mask_rcnn.ts';
import { ModelProto } from '../runtime/onnx_proto.ts';
import { detect } from '../api/detect.ts';
import { evaluate, evaluateAll, evaluateAllAsync } from '../eval/index.ts';
import { UserError } from '../core/errors.ts';
import { parseThreads, positiveInt } from '../core/options.ts';
import { tvStateDict } from './helpers/synthetic_detectors.ts';
import { mmdetPreprocess, mmdetTransformConfig } from '../heads/transform_mmdet.ts';
import { torchvisionPreprocess } from '../heads/transform_torchvision.ts';

type Props = Record<string, string>;

/** `bytes` with its metadata props replaced by edit(props). */
function editMetadata(bytes: Uint8Array, edit: (p: Props) => void): Uint8Array {
  const model = ModelProto.decode(bytes) as unknown as { metadataProps: Array<{ key: string; value: string }> };
  const props: Props = Object.fromEntries(model.metadataProps.map((kv) => [kv.key, kv.value]));
  edit(props);
  model.metadataProps = Object.entries(props).map(([key, value]) => ({ key, value }));
  return ModelProto.encode(model as unknown as Record<string, unknown>).finish();
}

/** Edits `fasternet.extra.detector` (JSON) in place. */
function editConfig(edit: (c: Record<string, any>) => void): (p: Props) => void {
  return (p) => {
    const extra = JSON.parse(p['fasternet.extra']);
    edit(extra.detector);
    p['fasternet.extra'] = JSON.stringify(extra);
  };
}

async function loadError(bytes: Uint8Array): Promise<string> {
  let det;
  try {
    det = await loadDetector(bytes);
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    const msg = (e as Error).message;
    expect(msg).not.toContain('\n');
    return msg;
  }
  await releaseDetector(det);
  throw new Error('expected loadDetector to refuse');
}

describe('model metadata and detector config: one validation at load', () => {
  let good: Uint8Array;
  beforeAll(() => {
    good = FLAVORS.torchvision(tvStateDict(), {}).bytes;
  }, 60_000);

  it('the unedited model loads', async () => {
    const det = await loadDetector(good);
    expect(det.cfg.numClasses).toBe(10);
    await releaseDetector(det);
  });

  const cases: Array<[string, (p: Props) => void, RegExp]> = [
    ['roi missing', editConfig((c) => delete c.roi), /^model: detector config: roi: Invalid input: expected object, received undefined$/],
    ['minSize "abc"', editConfig((c) => (c.preprocess.minSize = 'abc')), /^model: detector config: preprocess\.minSize: Invalid input: expected number, received string/],
    ['minSize 100000 (it sizes the input allocation)', editConfig((c) => (c.preprocess.minSize = 100000)), /^model: detector config: preprocess\.minSize: Too big: expected number to be <=8192/],
    ['minSize 4000 above maxSize', editConfig((c) => (c.preprocess.minSize = 4000)), /^model: detector config: preprocess\.maxSize: maxSize is below minSize$/],
    ['empty anchors', editConfig((c) => (c.anchors.sizes = [])), /^model: detector config: anchors\.sizes: Too small: expected array to have >=1 items/],
    ['a non-numeric mask threshold', editConfig((c) => (c.mask.threshold = 'half')), /^model: detector config: mask\.threshold: Invalid input: expected number, received string$/],
    ['an NMS threshold of 1.5', editConfig((c) => (c.boxHead.nmsThresh = 1.5)), /^model: detector config: boxHead\.nmsThresh: Too big: expected number to be <=1$/],
    ['class names of the wrong count', editConfig((c) => c.classNames.pop()), /^model: detector config: classNames: has 10 names for 11 labels/],
    ['no detector config', (p) => (p['fasternet.extra'] = '{}'), /^model: metadata lacks the detector config \(fasternet\.extra\.detector\); re-convert the checkpoint$/],
    ['numClasses "abc"', (p) => (p['fasternet.numClasses'] = '"abc"'), /^model: metadata: numClasses: Invalid input: expected number, received string$/],
    ['outputs not a list', (p) => (p['fasternet.outputs'] = '{}'), /^model: metadata: outputs: Invalid input: expected array, received object$/],
    ['metadata that is not JSON', (p) => (p['fasternet.arch'] = '{'), /^model: metadata fasternet\.arch is not JSON$/],
    ['the box and mask heads swapped', (p) => {
      const box = p['fasternet.box_head_onnx'];
      p['fasternet.box_head_onnx'] = p['fasternet.mask_head_onnx'];
      p['fasternet.mask_head_onnx'] = box;
    }, /^model: the box head graph lacks output class_logits, output box_regression \(it has inputs rois; outputs mask_logits/],
    ['a class count the heads do not have', editConfig((c) => {
      c.numClasses = 5;
      c.classNames = c.classNames.slice(0, 6);
      c.categoryIds = c.categoryIds.slice(0, 6);
    }), /^model: the box head scores 11, the config's 5 classes need 6$/],
  ];
  for (const [what, edit, msg] of cases) {
    it(`refuses ${what}`, async () => {
      expect(await loadError(editMetadata(good, edit))).toMatch(msg);
    });
  }
});

describe('library options: invalidParameterError, never a TypeError', () => {
  const refusal = async (f: () => unknown): Promise<string> => {
    try {
      await f();
    } catch (e) {
      expect(e, String(e)).toBeInstanceOf(UserError);
      return (e as Error).message;
    }
    throw new Error('expected a refusal');
  };

  it('detect(null), model: {}, a plain Array as pixels, bad numbers', async () => {
    expect(await refusal(() => detect(null as never))).toBe('image must be a file path, encoded image bytes (Uint8Array) or raw RGB pixels { data, width, height }, got null');
    expect(await refusal(() => detect('x.png', { model: {} as never }))).toBe('options.model must be a .onnx path or a detector from loadDetector(), got an object (Object)');
    expect(await refusal(() => detect({ data: [1, 2, 3] as never, width: 1, height: 1 }, { model: 'm.onnx' }))).toBe(
      'image.data must be a Uint8Array of 1x1x3 RGB bytes, got an array of length 3',
    );
    expect(await refusal(() => detect('x.png', { model: 'm.onnx', threads: 100000 }))).toBe('options.threads must be an integer in [1, 256], got 100000');
    expect(await refusal(() => detect('x.png', { model: 'm.onnx', scoreThreshold: Number.NaN }))).toBe('options.scoreThreshold must be a number in [0, 1], got NaN');
    expect(await refusal(() => detect('x.png', null as never))).toBe('options must be an object, got null');
  });

  it('CLI numbers have ranges: --threads is capped', () => {
    expect(() => parseThreads('100000')).toThrow(new UserError('--threads must be an integer in [1, 256] or auto, got "100000"'));
    expect(() => positiveInt('--threads', '100000', 256)).toThrow(new UserError('--threads must be an integer in [1, 256], got "100000"'));
    expect(positiveInt('--threads', '8', 256)).toBe(8);
  });

  const gt = {
    images: [{ id: 1, width: 10, height: 10 }],
    categories: [{ id: 1, name: 'a' }],
    annotations: [{ id: 1, image_id: 1, category_id: 1, bbox: [0, 0, 5, 5], area: 25, iscrowd: 0 }],
  };
  const res = [{ image_id: 1, category_id: 1, bbox: [0, 0, 5, 5], score: 0.9 }];

  it("evaluate refuses iouType 'BBOX' and 'keypoints' instead of computing something else", async () => {
    expect(evaluate(gt, res, { iouType: 'bbox' }).stats[0]).toBeCloseTo(1, 12);
    expect(await refusal(() => evaluate(gt, res, { iouType: 'BBOX' as never }))).toBe(`options.iouType must be 'bbox' or 'segm', got "BBOX"`);
    expect(await refusal(() => evaluate(gt, res, { iouType: 'keypoints' as never }))).toBe(`options.iouType must be 'bbox' or 'segm', got "keypoints"`);
    expect(await refusal(() => evaluateAll(gt, res, ['bbox', 'keypoints' as never]))).toBe(`iouTypes[1] must be 'bbox' or 'segm', got "keypoints"`);
  });

  it('evaluate(gt, res) without options, null GT, non-array results: refused by name', async () => {
    expect(await refusal(() => (evaluate as (...a: unknown[]) => unknown)(gt, res))).toBe("options must be an object with iouType 'bbox' or 'segm', got undefined");
    expect(await refusal(() => evaluate(null as never, res, { iouType: 'bbox' }))).toBe('gt must be a GT file path, a parsed COCO dataset or a loadGt() result, got null');
    expect(await refusal(() => evaluate(gt, {} as never, { iouType: 'bbox' }))).toBe('results must be a results file path or an array of results, got an object (Object)');
    expect(await refusal(() => evaluateAllAsync(gt, res, ['bbox'], { threads: 100000 }))).toBe("options.threads must be an integer in [1, 256] or 'auto', got 100000");
  });
});

describe('extreme aspect ratios: as the frameworks do, or that image alone refused', () => {
  const img = (width: number, height: number) => ({ data: new Uint8Array(width * height * 3), width, height, channels: 3 });

  it('mmdet: 1x5000 rescales to 1333x0 (mmcv int(x*f+0.5)), which cv2.resize refuses: a UserError naming the sizes', () => {
    expect(() => mmdetPreprocess(img(5000, 1), mmdetTransformConfig('pytorch'))).toThrow(new UserError(
      'image 5000x1 resizes to 1333x0 under img_scale 1333x800 (too elongated; mmdetection fails on it too)',
    ));
    // 3x1000 gives 1333x4: computed, padded to 1344x32 as mmdet pads.
    expect(mmdetPreprocess(img(1000, 3), mmdetTransformConfig('pytorch')).input.shape).toEqual([1, 3, 32, 1344]);
  });

  it('torchvision: 3x1000 at the default 800/1333 is computed (floor(3*1.333) = 3 rows, 1333 columns); at 256/256 it would be 0 rows: refused', () => {
    const p = { kind: 'torchvision_rcnn' as const, minSize: 800, maxSize: 1333, mean: [0.485, 0.456, 0.406] as [number, number, number], std: [0.229, 0.224, 0.225] as [number, number, number], sizeDivisible: 32 };
    expect(torchvisionPreprocess(img(1000, 3), p).imageSize).toEqual([3, 1333]);
    expect(() => torchvisionPreprocess(img(1000, 3), { ...p, minSize: 256, maxSize: 256 })).toThrow(
      new UserError('image 1000x3 resizes to 256x0 under min_size 256 / max_size 256 (too elongated; torchvision fails on it too)'),
    );
  });
});
