/**
 * torchvision-flavor Mask R-CNN parity against torchvision 0.14's own MaskRCNN (fixtures from
 * scripts/fixtures/make_detect_tv_fixtures.py): maskrcnn_resnet50_fpn with the released file's old key names,
 * and a FasterNet-T0 body under torchvision's FPN/RPN/RoI heads, on a photo that is resized (chelsea) and one
 * that is not (coffee 2x). Every stage is compared so that a failure names its stage.
 */
import { beforeAll, describe, expect, it } from 'vitest';
// Shared by detect_tv_r50.test.ts and detect_tv_fasternet.test.ts (one model per file keeps each file short).
import { join } from 'node:path';
import { decodeImage } from '../../image/decode.ts';
import type { FloatTensor, ImageU8 } from '../../core/tensor.ts';
import { convertTorchvisionDetector } from '../../convert/detection.ts';
import { loadDetector, runDetector, releaseDetector, type Detector, type Intermediates } from '../../heads/mask_rcnn.ts';
import { DIR, boxIou, loadCase, matchDetections, referenceMasks, seededStateDict, upsample2x } from './detect_tv_fixtures.ts';

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** x[0, ::cs, ::ys, ::xs] of an NCHW (or NHWC-transposed rpn) tensor. */
function strided(t: { shape: number[]; data: Float32Array }, cs: number, ys: number, xs: number, nhwc = false): Float32Array {
  const [, a, b, c] = t.shape;
  const [C, H, W] = nhwc ? [c, a, b] : [a, b, c];
  const out: number[] = [];
  for (let ch = 0; ch < C; ch += cs) {
    for (let y = 0; y < H; y += ys) {
      for (let x = 0; x < W; x += xs) out.push(nhwc ? t.data[(y * W + x) * C + ch] : t.data[(ch * H + y) * W + x]);
    }
  }
  return Float32Array.from(out);
}

async function images(): Promise<Record<string, ImageU8>> {
  return {
    chelsea: await decodeImage(join(DIR, 'chelsea.png')),
    coffee2x: upsample2x(await decodeImage(join(DIR, 'coffee.png'))),
  };
}

export function parityTests(model: 'r50' | 'fasternet'): void {
  describe(`torchvision Mask R-CNN parity: ${model}`, () => {
    let det: Detector;
    let imgs: Record<string, ImageU8>;
    beforeAll(async () => {
      const { bytes } = convertTorchvisionDetector(seededStateDict(model));
      det = await loadDetector(bytes);
      imgs = await images();
      return () => releaseDetector(det);
    });

    for (const image of ['chelsea', 'coffee2x']) {
      it(`${image}: every stage matches torchvision 0.14`, async () => {
        const c = loadCase(`${model}_${image}`);
        const mid: Partial<Intermediates> = {};
        const timings: Record<string, number> = {};
        const res = await runDetector(det, imgs[image], { intermediates: mid, timings });

        // preprocessing: resize rule and the bilinear interpolation of the normalized image
        expect(mid.imageSize).toEqual(c.meta.resized_size);
        expect(mid.input!.shape.slice(2)).toEqual(c.meta.padded_size);
        const inDiff = maxAbsDiff(strided(mid.input!, 1, 23, 29), c.get('input_sample').data);
        expect(inDiff).toBeLessThan(1e-5);

        // FPN levels and RPN head (sampled), relative to each tensor's magnitude
        const stage: Record<string, number> = { input: inDiff };
        const float = (k: string): FloatTensor => {
          const t = mid.features![k];
          if (!(t.data instanceof Float32Array)) throw new Error(`${k} is not float32 (a float model was expected)`);
          return t as FloatTensor;
        };
        for (let l = 0; l < 4; l++) {
          const ref = c.get(`fpn_${l}`).data;
          stage[`fpn_${l}`] = maxAbsDiff(strided(float(`fpn_${l}`), 32, 7, 7, true), ref) / maxAbs(ref);
          expect(stage[`fpn_${l}`]).toBeLessThan(1e-3);
        }
        const refObj = c.get('rpn_logits_0').data;
        stage.rpn_objectness = maxAbsDiff(strided(float('rpn_objectness_0'), 1, 7, 7, true), refObj) / maxAbs(refObj);
        expect(stage.rpn_objectness).toBeLessThan(1e-3);

        // proposals: each reference proposal has a near-identical one of ours
        const refProps = c.get('proposals').data;
        const ours = mid.proposals!.boxes;
        let propMatched = 0;
        const nRef = refProps.length / 4;
        for (let i = 0; i < nRef; i++) {
          const j = i < ours.length / 4 && boxIou(refProps, i * 4, ours, i * 4) > 0.999 ? i : -1;
          if (j >= 0) { propMatched++; continue; }
          for (let k = 0; k < ours.length / 4; k++) if (boxIou(refProps, i * 4, ours, k * 4) > 0.999) { propMatched++; break; }
        }
        stage.proposals_matched = propMatched / nRef;
        expect(ours.length / 4).toBe(nRef);
        expect(propMatched / nRef).toBeGreaterThanOrEqual(0.97);

        // box head on the first proposals (same proposals in the same order -> same logits)
        const refLogits = c.get('box_class_logits');
        const rows = refLogits.shape[0], K = refLogits.shape[1];
        if (maxAbsDiff(ours.subarray(0, rows * 4), refProps.subarray(0, rows * 4)) < 1e-2) {
          stage.box_logits = maxAbsDiff(mid.classLogits!.subarray(0, rows * K), refLogits.data) / maxAbs(refLogits.data);
          expect(stage.box_logits).toBeLessThan(1e-3);
        }

        // detections before the transform's postprocess, and the mask head on them (first 8, when in the same order)
        const refDet = c.get('det_boxes_resized').data;
        const refLabels = c.getInt('det_labels');
        const ourDet = mid.detections!;
        const refMask = c.get('mask_logits');
        const nm = refMask.shape[0], mm = refMask.shape[1] * refMask.shape[2];
        let sameOrder = ourDet.labels.length >= nm;
        for (let i = 0; i < nm && sameOrder; i++) sameOrder = ourDet.labels[i] === refLabels[i] && boxIou(refDet, i * 4, ourDet.boxes, i * 4) > 0.999;
        if (sameOrder) {
          // mask logits of each detection's class, from the head's space-to-depth layout [n, 2, 2, K, h, w]
          const [, , , K, h2, w2] = mid.maskLogits!.shape;
          const ourMask = new Float32Array(nm * mm);
          for (let i = 0; i < nm; i++) {
            for (let t = 0; t < 4; t++) {
              const src = ((i * 4 + t) * K + ourDet.labels[i]) * h2 * w2;
              for (let y = 0; y < h2; y++) for (let x = 0; x < w2; x++) ourMask[i * mm + (2 * y + (t >> 1)) * 2 * w2 + 2 * x + (t & 1)] = mid.maskLogits!.data[src + y * w2 + x];
            }
          }
          stage.mask_logits = maxAbsDiff(ourMask, refMask.data) / maxAbs(refMask.data);
          expect(stage.mask_logits).toBeLessThan(1e-3);
        }

        // final detections
        const [h, w] = c.meta.image_size;
        const st = matchDetections(
          { boxes: c.get('boxes').data, scores: c.get('det_scores').data, labels: c.getInt('det_labels'), masks: referenceMasks(c) },
          res, h, w,
        );
        console.log(`${model} ${image}`, JSON.stringify({ stage, match: st, timings }));
        expect(st.reference).toBe(c.meta.num_detections);
        expect(st.matched / st.reference).toBeGreaterThanOrEqual(0.97);
        expect(st.extra / st.reference).toBeLessThanOrEqual(0.03);
      });
    }
  });
}
