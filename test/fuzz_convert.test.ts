/**
 * Convert refuses, in one UserError line, every checkpoint that would build a silently wrong model (issue 13
 * "silently wrong models" and "stack traces instead of one line"): wrong shapes (an mmdet backbone conv, an
 * fc_cls of the wrong width, a torchvision conv1 of 5x5, a cls_score of the wrong rank), non-float or
 * non-finite tensors, extra and missing keys listed the same way in every flavor, a torchvision file given
 * --flavor mmdet. Small synthetic checkpoints (FasterNet-T0 bodies, 64-wide FPN), generated here.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { syntheticStateDict } from '../backbones/synthetic.ts';
import { resnet50ParamSpecs } from '../backbones/resnet.ts';
import { torchvisionHeadSpecs } from '../convert/detection.ts';
import { FLAVORS, type ConvertOptions } from '../convert/index.ts';
import { mmdetDetectorWeights } from '../convert/mmdet.ts';
import { UserError } from '../core/errors.ts';
import type { StateDict, Tensor } from '../core/tensor.ts';
import { cliWithRss } from './helpers/hostile.ts';
import { mmdetStateDict, tvStateDict } from './helpers/synthetic_detectors.ts';
import { safetensorsBytes } from './helpers/safetensors.ts';

const f32 = (shape: number[]): Tensor => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });

/** The UserError message of converting `sd` with `flavor` (only the checks run: weights are read, no ONNX built). */
function refusal(flavor: 'torchvision' | 'mmdet', sd: StateDict, o: ConvertOptions = {}): string {
  try {
    if (flavor === 'mmdet') mmdetDetectorWeights(sd, {}, { resnetStyle: o.resnetStyle, fileName: o.fileName });
    else FLAVORS.torchvision(sd, o);
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    expect(e.message).not.toContain('\n');
    return e.message;
  }
  throw new Error('expected a refusal');
}

describe('convert checks every tensor against the architecture', () => {
  it('the good synthetic checkpoints pass the checks', () => {
    expect(() => mmdetDetectorWeights(mmdetStateDict())).not.toThrow();
    const tv = FLAVORS.torchvision(tvStateDict(), {});
    expect(tv.meta.numClasses).toBe(10);
  }, 60_000);

  const mutations: Array<[string, 'torchvision' | 'mmdet', (sd: StateDict) => void, RegExp]> = [
    ['a torchvision cls_score of the wrong rank', 'torchvision', (sd) => sd.set('roi_heads.box_predictor.cls_score.weight', f32([11 * 1024])),
      /^torchvision Mask R-CNN checkpoint: 1 shape mismatch \(roi_heads\.box_predictor\.cls_score\.weight: \[11264\], expected \[11, 1024\]\)$/],
    ['a torchvision FPN lateral of the wrong width', 'torchvision', (sd) => sd.set('backbone.fpn.inner_blocks.2.0.weight', f32([64, 80, 1, 1])),
      /^torchvision Mask R-CNN checkpoint: 1 shape mismatch \(backbone\.fpn\.inner_blocks\.2\.0\.weight: \[64, 80, 1, 1\], expected \[64, 160, 1, 1\]\)$/],
    ['a torchvision patch embedding of 5x5', 'torchvision', (sd) => sd.set('backbone.body.patch_embed.proj.weight', f32([40, 3, 5, 5])),
      /1 shape mismatch \(backbone\.body\.patch_embed\.proj\.weight: \[40, 3, 5, 5\], expected \[40, 3, 4, 4\]\)/],
    ['a torchvision extra key', 'torchvision', (sd) => sd.set('roi_heads.extra.weight', f32([1])), /^torchvision Mask R-CNN checkpoint: 1 unexpected key \(roi_heads\.extra\.weight\)$/],
    ['a torchvision missing key', 'torchvision', (sd) => sd.delete('rpn.head.bbox_pred.bias'), /^torchvision Mask R-CNN checkpoint: 1 missing key \(rpn\.head\.bbox_pred\.bias\)$/],
    ['a torchvision NaN', 'torchvision', (sd) => ((sd.get('roi_heads.box_head.fc7.weight')!.data as Float32Array)[5] = NaN),
      /^torchvision Mask R-CNN checkpoint: 1 tensor holds NaN or infinite values \(roi_heads\.box_head\.fc7\.weight\)$/],
    ['an mmdet fc_cls of the wrong width', 'mmdet', (sd) => sd.set('roi_head.bbox_head.fc_cls.weight', f32([5, 512])),
      /^mmdet Mask R-CNN checkpoint: 1 shape mismatch \(roi_head\.bbox_head\.fc_cls\.weight: \[5, 512\], expected \[5, 128\]\)$/],
    ['an mmdet backbone conv of the wrong shape', 'mmdet', (sd) => sd.set('backbone.stages.4.blocks.3.mlp.0.weight', f32([320, 160, 3, 3])),
      /1 shape mismatch \(backbone\.stages\.4\.blocks\.3\.mlp\.0\.weight: \[320, 160, 3, 3\], expected \[320, 160, 1, 1\]\)/],
    ['mmdet extra keys, refused as in the other flavors', 'mmdet', (sd) => { sd.set('foo.bar', f32([1])); sd.set('ema.x', f32([1])); },
      /^mmdet Mask R-CNN checkpoint: 2 unexpected keys \(ema\.x, foo\.bar\)$/],
    ['mmdet missing keys', 'mmdet', (sd) => { sd.delete('roi_head.mask_head.upsample.bias'); sd.delete('neck.fpn_convs.3.conv.weight'); },
      /^mmdet Mask R-CNN checkpoint: 2 missing keys \(neck\.fpn_convs\.3\.conv\.weight, roi_head\.mask_head\.upsample\.bias\)$/],
    ['an mmdet int64 tensor', 'mmdet', (sd) => sd.set('rpn_head.rpn_cls.bias', { shape: [3], data: new BigInt64Array(3), sourceDtype: 'int64' }),
      /^mmdet Mask R-CNN checkpoint: 1 tensor is not floating point \(rpn_head\.rpn_cls\.bias: int64\)$/],
    ['an mmdet checkpoint with no backbone.* keys', 'mmdet', (sd) => { for (const k of [...sd.keys()]) if (k.startsWith('backbone.')) sd.delete(k); },
      /^not an mmdet detector checkpoint: no 'backbone\.\*' keys \(keys look like: neck\.lateral_convs\.0\.conv\.weight/],
  ];
  for (const [what, flavor, mutate, msg] of mutations) {
    it(`refuses ${what}`, () => {
      const sd = flavor === 'mmdet' ? mmdetStateDict() : tvStateDict();
      mutate(sd);
      expect(refusal(flavor, sd)).toMatch(msg);
    });
  }

  it('a torchvision file given --flavor mmdet names the right flavor', () => {
    expect(refusal('mmdet', tvStateDict())).toBe('mmdet Mask R-CNN checkpoint: keys backbone.body.* are torchvision\'s layout; use --flavor torchvision');
  });

  it('a torchvision ResNet50 conv1 of 5x5 is refused', () => {
    const sd: StateDict = new Map([
      ...syntheticStateDict(resnet50ParamSpecs(0).filter((s) => !s.key.endsWith('num_batches_tracked')), 3, 'backbone.body.'),
      ...syntheticStateDict(torchvisionHeadSpecs([256, 512, 1024, 2048], 5, 64), 3),
    ]);
    expect(() => FLAVORS.torchvision(sd, {}) && undefined).not.toThrow();
    sd.set('backbone.body.conv1.weight', f32([64, 3, 5, 5]));
    expect(refusal('torchvision', sd)).toBe('torchvision Mask R-CNN checkpoint: 1 shape mismatch (backbone.body.conv1.weight: [64, 3, 5, 5], expected [64, 3, 7, 7])');
  }, 120_000);
});

describe('fasternet convert: one line, exit 2, no output file', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'fuzz-convert-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a mis-shaped mmdet fc_cls is refused in one line, no file written', async () => {
    const sd = mmdetStateDict();
    sd.set('roi_head.bbox_head.fc_cls.weight', f32([81, 512]));
    const path = join(dir, 'bad.safetensors');
    writeFileSync(path, safetensorsBytes(sd));
    const out = join(dir, 'bad.onnx');
    const r = await cliWithRss(['convert', path, '--flavor', 'mmdet', '--out', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^fasternet: .*mmdet Mask R-CNN checkpoint: 1 shape mismatch \(roi_head\.bbox_head\.fc_cls\.weight: \[81, 512\], expected \[5, 128\]\)\n$/);
    const { existsSync } = await import('node:fs');
    expect(existsSync(out)).toBe(false);
  }, 60_000);
});
