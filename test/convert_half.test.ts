/**
 * `fasternet convert --half`: float16 initializers (main graph and embedded heads) must halve the file and
 * leave detections as float32 gives them, on the seeded FasterNet-T0 torchvision model of test/fixtures/detect_tv
 * (the one whose float32 detections match torchvision in detect_tv_fasternet.test.ts). Also the float16
 * rounding itself against values numpy's astype(float16) gives, and the --classes / --min-size overrides.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { FLAVORS } from '../convert/index.ts';
import { parseClassesOption } from '../cli/convert.ts';
import { applyDetectorOverrides, halfDetectorModel, torchvisionDetectorWeights } from '../convert/detection.ts';
import { float16Bits, float16Value } from '../runtime/graph.ts';
import { metadataFromBytes, parseMetadata } from '../runtime/metadata.ts';
import { detect, releaseDetectModels, type Detection } from '../api/detect.ts';
import { loadDetector, releaseDetector, type Detector } from '../heads/mask_rcnn.ts';
import { DIR, seededStateDict } from './helpers/detect_tv_fixtures.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function iou(a: Detection['box'], b: Detection['box']): number {
  const iw = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const ih = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih;
  return u > 0 ? (iw * ih) / u : 0;
}

describe('float16 conversion', () => {
  const dets: Detector[] = [];
  afterAll(async () => {
    await Promise.all(dets.map((d) => releaseDetector(d)));
    await releaseDetectModels();
  });

  it('rounds float32 to the nearest float16 (ties to even), as numpy does', () => {
    // numpy: np.array([...], np.float32).astype(np.float16).view(np.uint16)
    const cases: Array<[number, number]> = [
      [0, 0x0000], [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65520, 0x7c00], [1e-8, 0x0000],
      [6.1035156e-5, 0x0400], [5.9604645e-8, 0x0001], [0.1, 0x2e66], [1.0009765625, 0x3c01],
      [1.00048828125, 0x3c00], [1.00146484375, 0x3c02], [-3.14159, 0xc248], [2.9802322e-8, 0x0000], [4.4703484e-8, 0x0001],
    ];
    for (const [v, bits] of cases) expect([v, float16Bits(v)]).toEqual([v, bits]);
    for (const bits of [0x3c00, 0x0001, 0x7bff, 0xc248, 0x2e66]) expect(float16Bits(float16Value(bits))).toBe(bits);
  });

  it('--half halves the file and keeps the detections (scores within 1e-3, same boxes)', async () => {
    const { bytes } = FLAVORS.torchvision(seededStateDict('fasternet'), {});
    const half = halfDetectorModel(bytes);
    expect(half.length).toBeLessThan(bytes.length * 0.55);
    const props = metadataFromBytes(half);
    expect(props['fasternet.float16']).toBe('true');
    expect(parseMetadata(props).extra).toEqual(parseMetadata(metadataFromBytes(bytes)).extra);
    const d32 = await loadDetector(bytes);
    const d16 = await loadDetector(half);
    dets.push(d32, d16);
    const image = join(DIR, 'chelsea.png');
    const a = (await detect(image, { model: d32 })).detections;
    const b = (await detect(image, { model: d16 })).detections;
    expect(a.length).toBeGreaterThan(20);
    let worstScore = 0;
    let matched = 0;
    for (const d of a) {
      if (d.score < 0.055) continue; // near the 0.05 cut an instance may fall on either side
      const m = b.filter((e) => e.label === d.label).map((e) => ({ e, o: iou(e.box, d.box) })).sort((x, y) => y.o - x.o)[0];
      expect(m?.o ?? 0).toBeGreaterThan(0.95);
      worstScore = Math.max(worstScore, Math.abs(m.e.score - d.score));
      matched++;
    }
    expect(matched).toBeGreaterThan(10);
    expect(worstScore).toBeLessThan(1e-3);
  });
});

describe('convert overrides', () => {
  const cfg = torchvisionDetectorWeights(seededStateDict('fasternet')).config; // 91 rows: background + 90
  const fg = Array.from({ length: 90 }, (_, i) => `thing ${i + 1}`);

  it('--classes: foreground names get __background__ first; category ids are the 1-based class index', () => {
    const c = applyDetectorOverrides(cfg, { classes: fg, minSize: 256, maxSize: 320 });
    expect(c.classNames.slice(0, 3)).toEqual(['__background__', 'thing 1', 'thing 2']);
    expect(c.categoryIds[90]).toBe(90);
    expect(c.preprocess).toMatchObject({ kind: 'torchvision_rcnn', minSize: 256, maxSize: 320 });
    expect(cfg.preprocess).toMatchObject({ minSize: 800, maxSize: 1333 }); // the input is not modified
    expect(applyDetectorOverrides(cfg, { classes: ['__background__', ...fg] }).classNames).toEqual(c.classNames);
  });

  it('--classes / --min-size errors name what the checkpoint holds', () => {
    expect(() => applyDetectorOverrides(cfg, { classes: fg.slice(1) })).toThrow(/89 names; the checkpoint has 90 foreground classes \+ background/);
    expect(() => applyDetectorOverrides(cfg, { classes: ['x', ...fg] })).toThrow(/first must be __background__/);
    expect(() => applyDetectorOverrides(cfg, { minSize: 512, maxSize: 256 })).toThrow(/--max-size 256 is below --min-size 512/);
    expect(() => applyDetectorOverrides(cfg, { minSize: 2.5 })).toThrow(/--min-size must be an integer/);
  });

  it('--classes reads a list, a .txt file or a .json file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'classes-'));
    try {
      writeFileSync(join(dir, 'c.txt'), 'T-shirt/top\nAnkle boot\n\n');
      writeFileSync(join(dir, 'c.json'), JSON.stringify(['T-shirt/top', 'Ankle boot']));
      writeFileSync(join(dir, 'bad.json'), '{"a": 1}');
      expect(parseClassesOption('T-shirt/top, Ankle boot')).toEqual(['T-shirt/top', 'Ankle boot']);
      expect(parseClassesOption(join(dir, 'c.txt'))).toEqual(['T-shirt/top', 'Ankle boot']);
      expect(parseClassesOption(join(dir, 'c.json'))).toEqual(['T-shirt/top', 'Ankle boot']);
      expect(() => parseClassesOption(join(dir, 'bad.json'))).toThrow(/JSON array of strings/);
      expect(() => parseClassesOption(join(dir, 'nope.txt'))).toThrow(/cannot read --classes file/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
