/**
 * Writes an mmdet-flavor FasterNet-S Mask R-CNN (80 COCO classes) with the seeded weights of the mmdet parity
 * fixture (test/fixtures/detect_mmdet/fasternet_s.json) for `fasternet bench detect`:
 *   tsx scripts/bench/make_mmdet_detector.ts OUT.onnx [clsScale]
 * The classifier is scaled by clsScale (default 40, as make_tv_detectors.ts does) so that many (box, class)
 * pairs pass score_thr 0.05 and NMS sees a realistic load. Timing does not depend on the values otherwise.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { convertMmdetDetector, COCO_CLASSES } from '../../io/convert_mmdet.ts';
import { seededStateDict, type SeededSpec } from '../../test/helpers/seeded_weights.ts';

const [out, scaleArg] = process.argv.slice(2);
if (!out) throw new Error('usage: make_mmdet_detector.ts OUT.onnx [clsScale]');
const fx = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'detect_mmdet', 'fasternet_s.json'), 'utf8')) as { seed: number; specs: SeededSpec[] };
const sd = seededStateDict(fx.specs, fx.seed);
const cls = sd.get('roi_head.bbox_head.fc_cls.weight')!.data as Float32Array;
const s = Number(scaleArg ?? 40);
for (let i = 0; i < cls.length; i++) cls[i] *= s;
writeFileSync(out, convertMmdetDetector(sd, { CLASSES: [...COCO_CLASSES] }).bytes);
process.stdout.write(`${out}\n`);
