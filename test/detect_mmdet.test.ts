/**
 * mmdet flavor parity pieces that stand on their own: the seeded weights (twin of the Python
 * generator), the checkpoint layout reader, and the test pipeline (Resize + Normalize + Pad) against
 * scripts/fixtures/mmdet_reference.py run on real photos. Fixtures: test/fixtures/detect_mmdet/.
 */
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resizeLinearCv2 } from '../image/resize_cv2.ts';
import type { ImageU8 } from '../core/tensor.ts';
import { mmdetPreprocess, mmdetTransformConfig, boxesToNetwork, boxesToOriginal } from '../heads/transform_mmdet.ts';
import { convertMmdetMaskRcnn, mmdetMetaFrom, COCO_CATEGORY_IDS, COCO_CLASSES } from '../convert/mmdet.ts';
import { FLAVORS } from '../convert/index.ts';
import type { DetectorConfig } from '../heads/config.ts';
import { f32, readPng } from './helpers/fixture_io.ts';
import { seededStateDict, seededTensor, type SeededSpec } from './helpers/seeded_weights.ts';
import type { StateDict } from '../core/tensor.ts';
import { mapRoiLevelsMmdet } from '../heads/roi_align.ts';
import { pasteMaskMmdet, toFullMask } from '../postprocess/paste_masks.ts';
import { encode, rleFrString, type RLE } from '../postprocess/mask.ts';
import { expf } from '../postprocess/torch_math.ts';

const DIR = join(import.meta.dirname, 'fixtures', 'detect_mmdet');

interface Fixture {
  arch: string;
  seed: number;
  style: 'pytorch' | 'caffe';
  specs: (SeededSpec & { dtype?: string })[];
  seeded_checks: { name: string; first: number[]; sum: number }[];
  cases: {
    image: string;
    prescale: [number, number] | null;
    img_scale: [number, number];
    meta: { ori_shape: number[]; img_shape: number[]; pad_shape: number[]; scale_factor: number[] };
    resized_sha256: string;
    input: { sha256: string; shape: number[] };
    detections: {
      boxes: string;
      scores: string;
      labels: number[];
      masks: { size: [number, number]; counts: string }[];
      mask_areas: number[];
    };
    stages?: {
      proposals: { count: number; data: string };
      bbox_roi_levels: number[];
      mask_pred_label_first24?: { shape: number[]; data: string };
    };
  }[];
}

const load = (arch: string): Fixture => JSON.parse(readFileSync(join(DIR, `${arch}.json`), 'utf8'));

/** The PNG as cv2.imread(IMREAD_COLOR) returns it (BGR). */
const readBgr = (name: string): ImageU8 => readPng(join(DIR, name), 'bgr');

function stateDictOf(fx: Fixture): StateDict {
  const sd = seededStateDict(fx.specs.filter((s) => s.dtype !== 'int64'), fx.seed);
  for (const s of fx.specs) if (s.dtype === 'int64') sd.set(s.name, { shape: s.shape, data: new BigInt64Array(1) });
  return sd;
}

for (const arch of ['fasternet_s', 'r50_caffe']) {
  describe(`mmdet ${arch}`, () => {
    const fx = load(arch);

    it('seeded weights equal the Python generator bit for bit', () => {
      expect(fx.seeded_checks.length).toBeGreaterThan(3);
      for (const c of fx.seeded_checks) {
        const spec = fx.specs.find((s) => s.name === c.name)!;
        const t = seededTensor(spec, fx.seed);
        expect(Array.from(t.data.subarray(0, 4))).toEqual(c.first);
        let sum = 0;
        for (const v of t.data) sum += v;
        expect(sum).toBeCloseTo(c.sum, 6);
      }
    });

    it('checkpoint layout: architecture, heads and COCO ids from the mmdet keys', () => {
      const sd = stateDictOf(fx);
      const meta = { CLASSES: COCO_CLASSES, config: fx.style === 'caffe' ? "model = dict(backbone=dict(type='ResNet', depth=50, style='caffe'))" : undefined };
      const m = convertMmdetMaskRcnn(sd, meta);
      if (arch === 'fasternet_s') {
        expect(m.backbone).toMatchObject({ type: 'fasternet', variant: 's', embedDim: 128, depths: [1, 2, 13, 2], nDiv: 4, mlpRatio: 2 });
        expect(m.normStyle).toBe('pytorch');
      } else {
        expect(m.backbone).toMatchObject({ type: 'resnet50', style: 'caffe' });
        expect(m.normStyle).toBe('caffe');
        // No config in meta: the style comes from a model-zoo file name, else the option, never a silent guess.
        expect(() => convertMmdetMaskRcnn(sd, {})).toThrow(/neither in the checkpoint's meta config nor in its file name; pass --resnet-style/);
        expect(convertMmdetMaskRcnn(sd, {}, { fileName: '/m/mask_rcnn_r50_caffe_fpn_1x_coco_bbox_mAP-0.38_20200504-0ebd1859.pth' }).backbone).toMatchObject({ style: 'caffe' });
        expect(convertMmdetMaskRcnn(sd, {}, { fileName: 'mask_rcnn_r50_fpn_1x_coco_20200205-d4b0c5d6.pth' }).backbone).toMatchObject({ style: 'pytorch' });
        expect(convertMmdetMaskRcnn(sd, {}, { fileName: 'model.pth', resnetStyle: 'pytorch' }).backbone).toMatchObject({ style: 'pytorch' });
      }
      expect(m.numClasses).toBe(80);
      expect(m.rpn.numAnchors).toBe(3);
      expect(m.categoryIds).toEqual(COCO_CATEGORY_IDS);
      expect(m.categoryIds[79]).toBe(90);
      expect(new Set(m.categoryIds).size).toBe(80);
      expect(m.bboxHead.fc6.weight.shape).toEqual([1024, 256 * 7 * 7]);
      expect(m.maskHead.upsample.weight.shape).toEqual([256, 256, 2, 2]);
      expect([...m.backboneState.keys()].some((k) => k.includes('num_batches_tracked'))).toBe(false);
      expect(m.backboneState.size).toBe(fx.specs.filter((s) => s.name.startsWith('backbone.') && s.dtype !== 'int64').length);
      // a non-COCO class list keeps 1-based ids; a wrong-length list is refused
      const names = COCO_CLASSES.map((n) => `x_${n}`);
      expect(convertMmdetMaskRcnn(sd, { ...meta, CLASSES: names }).categoryIds[10]).toBe(11);
      expect(() => convertMmdetMaskRcnn(sd, { ...meta, CLASSES: ['a'] })).toThrow(/CLASSES has 1 names/);
    });

    for (const c of fx.cases) {
      it(`test pipeline on ${c.image}${c.prescale ? ` (pre-sized ${c.prescale})` : ''}: resized pixels and network input bit-exact`, () => {
        let img = readBgr(c.image);
        if (c.prescale) img = resizeLinearCv2(img, c.prescale[0], c.prescale[1]);
        const cfg = mmdetTransformConfig(fx.style, c.img_scale);
        const out = mmdetPreprocess(img, cfg, 'bgr');
        expect(out.meta.oriShape).toEqual(c.meta.ori_shape);
        expect(out.meta.imgShape).toEqual(c.meta.img_shape);
        expect(out.meta.padShape).toEqual(c.meta.pad_shape);
        expect(Array.from(out.meta.scaleFactor)).toEqual(c.meta.scale_factor);
        expect(createHash('sha256').update(out.resized.data).digest('hex')).toBe(c.resized_sha256);
        expect(out.input.shape).toEqual(c.input.shape);
        const bytes = new Uint8Array(out.input.data.buffer, out.input.data.byteOffset, out.input.data.byteLength);
        expect(createHash('sha256').update(bytes).digest('hex')).toBe(c.input.sha256);
        // rescale round trip used by simple_test_mask stays within a float ulp of the box
        const boxes = f32(c.detections.boxes);
        const back = boxesToOriginal(boxesToNetwork(boxes, out.meta.scaleFactor), out.meta.scaleFactor);
        for (let i = 0; i < boxes.length; i++) expect(Math.abs(back[i] - boxes[i])).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(boxes[i])));
      });
    }

    const staged = fx.cases.find((c) => c.stages)!;
    it('reference stages agree with the ops: RoI levels of the proposals (finest_scale 56)', () => {
      const st = staged.stages!;
      const props = f32(st.proposals.data);
      const boxes = new Float32Array(st.proposals.count * 4);
      for (let i = 0; i < st.proposals.count; i++) boxes.set(props.subarray(i * 5, i * 5 + 4), i * 4);
      const lv = mapRoiLevelsMmdet(boxes, 4, 56);
      expect(Array.from(lv)).toEqual(st.bbox_roi_levels);
      expect(new Set(st.bbox_roi_levels).size).toBeGreaterThan(1);
    });

    it('reference masks = sigmoid + pasteMaskMmdet of its own mask logits (get_seg_masks, rescale=True)', () => {
      const st = staged.stages!.mask_pred_label_first24!;
      const [n, mh, mw] = st.shape;
      const logits = f32(st.data);
      const det = f32(staged.detections.boxes);
      const sf = Float32Array.from(staged.meta.scale_factor);
      const [imH, imW] = staged.meta.ori_shape;
      let differing = 0;
      for (let i = 0; i < n; i++) {
        const prob = new Float32Array(mh * mw);
        for (let k = 0; k < prob.length; k++) prob[k] = Math.fround(1 / Math.fround(1 + expf(-logits[i * mh * mw + k])));
        // simple_test_mask multiplies by scale_factor, get_seg_masks divides again
        const box = boxesToOriginal(boxesToNetwork(det.subarray(i * 4, i * 4 + 4), sf), sf);
        const pasted = toFullMask(pasteMaskMmdet(prob, 28, box, imH, imW), imH, imW);
        const ours: RLE = encode(pasted, imH, imW);
        const ref = staged.detections.masks[i];
        const want = rleFrString(ref.counts, ref.size[0], ref.size[1]);
        let area = 0;
        for (const v of pasted) area += v;
        expect(area).toBe(staged.detections.mask_areas[i]);
        if (Array.from(ours.counts).join() !== Array.from(want.counts).join()) differing++;
      }
      expect(differing).toBe(0);
    });
  });
}

describe('mmdet checkpoint meta and the convert flavor', () => {
  it('mmdetMetaFrom keeps CLASSES and config, refuses non-string class names', () => {
    expect(mmdetMetaFrom({ CLASSES: ['a', 'b'], config: 'x', epoch: 12 })).toEqual({ CLASSES: ['a', 'b'], config: 'x' });
    expect(mmdetMetaFrom(undefined)).toEqual({});
    expect(() => mmdetMetaFrom({ CLASSES: ['a', 3] })).toThrow(/non-string/);
  });

  it("FLAVORS.mmdet builds a detector whose metadata carries the mmdet config (caffe style from meta.config)", () => {
    const fx = load('r50_caffe');
    const sd = stateDictOf(fx);
    const config = "model = dict(type='MaskRCNN', backbone=dict(type='ResNet', depth=50, norm_cfg=dict(requires_grad=False), style='caffe'))";
    const { meta } = FLAVORS.mmdet(sd, { meta: { CLASSES: [...COCO_CLASSES], config, epoch: 12 } });
    expect(meta.flavor).toBe('mmdet');
    expect(meta.arch).toBe('resnet50_caffe');
    const det = meta.extra!.detector as DetectorConfig;
    expect(det.preprocess).toMatchObject({ kind: 'mmdet', toRgb: false, mean: [103.53, 116.28, 123.675], std: [1, 1, 1] });
    expect(det.categoryIds.slice(-3)).toEqual([88, 89, 90]);
    expect(det.classNames[0]).toBe('person');
  }, 60_000);
});

describe('LoadImageFromFile decoding', () => {
  it('cv2.imdecode(IMREAD_COLOR) applies EXIF orientation: decodeImage(autoOrient) gives its pixels', async () => {
    const { decodeImage } = await import('../image/decode.ts');
    const want = JSON.parse(readFileSync(join(DIR, 'exif_orientation6.json'), 'utf8'));
    const file = join(DIR, 'exif_orientation6.jpg');
    for (const [autoOrient, ref] of [[true, want.imread_color], [false, want.ignore_orientation]] as const) {
      const img = await decodeImage(file, { autoOrient });
      expect([img.height, img.width, 3]).toEqual(ref.shape);
      expect(createHash('sha256').update(img.data).digest('hex')).toBe(ref.sha256);
    }
  });
});
