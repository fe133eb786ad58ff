import { describe, expect, it } from 'vitest';
import { batchedNms, nms, nmsMmcv, useWasmNms } from '../postprocess/nms.ts';
import { runBenchNms } from '../bench/nms.ts';
import { mulberry32 } from '../core/random.ts';
import { argsortDescending, sortPairsDescending } from '../postprocess/sort.ts';

/**
 * The grid strategy (WebAssembly scan, and its JS twin) against the all-pairs loop ('brute'), which is a
 * line-by-line replay of the C++ kernels (itself checked against torchvision/mmcv fixtures in nms.test.ts).
 */
function randomCase(seed: number): { boxes: Float32Array; scores: Float32Array; idxs: Int32Array } {
  const rnd = mulberry32(seed);
  const n = 80 + Math.floor(rnd() * 1200);
  const boxes = new Float32Array(n * 4), scores = new Float32Array(n), idxs = new Int32Array(n);
  const nObj = 3 + Math.floor(rnd() * 40);
  const objs = Array.from({ length: nObj }, () => ({ x: rnd() * 800, y: rnd() * 600, w: 1 + rnd() ** 2 * 400, h: 1 + rnd() ** 2 * 300 }));
  const levels = [1, 4, 16][seed % 3];
  for (let i = 0; i < n; i++) {
    const o = objs[Math.floor(rnd() * nObj)];
    const kind = rnd();
    let x1: number, y1: number, x2: number, y2: number;
    if (kind < 0.03) { // empty or inverted
      x1 = o.x; y1 = o.y; x2 = o.x - rnd() * 10 * (rnd() < 0.5 ? 0 : 1); y2 = o.y + rnd() * 10;
    } else if (kind < 0.06) { // exact duplicate of an earlier box
      const j = Math.floor(rnd() * Math.max(1, i)) * 4;
      x1 = boxes[j]; y1 = boxes[j + 1]; x2 = boxes[j + 2]; y2 = boxes[j + 3];
    } else {
      const cx = o.x + (rnd() - 0.5) * o.w * 0.5, cy = o.y + (rnd() - 0.5) * o.h * 0.5;
      const w = o.w * (0.6 + rnd() * 0.8), h = o.h * (0.6 + rnd() * 0.8);
      x1 = cx - w / 2; y1 = cy - h / 2; x2 = cx + w / 2; y2 = cy + h / 2;
      if (seed % 4 === 0) { x1 = Math.round(x1); y1 = Math.round(y1); x2 = Math.round(x2); y2 = Math.round(y2); } // integer grid: exact-threshold IoUs
    }
    boxes[i * 4] = x1; boxes[i * 4 + 1] = y1; boxes[i * 4 + 2] = x2; boxes[i * 4 + 3] = y2;
    scores[i] = Math.floor(rnd() * 64) / 64; // many ties
    idxs[i] = Math.floor(rnd() * levels);
  }
  return { boxes, scores, idxs };
}

describe('grid NMS (WebAssembly and JS scans) decides exactly like the all-pairs loop', () => {
  for (const wasm of [true, false]) {
    it(`${wasm ? 'WebAssembly' : 'JS'} scan, 60 random cases x thresholds 0.3/0.5/0.7 x both flavors`, () => {
      expect(useWasmNms(wasm)).toBe(wasm);
      try {
        for (let seed = 1; seed <= 60; seed++) {
          const { boxes, scores } = randomCase(seed);
          for (const thr of [0.3, 0.5, 0.7]) {
            const tag = `seed ${seed} thr ${thr}`;
            expect(Array.from(nms(boxes, scores, thr, { strategy: 'grid' })), tag).toEqual(Array.from(nms(boxes, scores, thr, { strategy: 'brute' })));
            for (const offset of [0, 1]) {
              expect(Array.from(nmsMmcv(boxes, scores, thr, { offset, strategy: 'grid' })), `${tag} offset ${offset}`)
                .toEqual(Array.from(nmsMmcv(boxes, scores, thr, { offset, strategy: 'brute' })));
            }
          }
        }
      } finally {
        useWasmNms(true);
      }
    });
  }

  it('batched paths (per-class, offset boxes) agree with class-by-class brute force', () => {
    for (let seed = 1; seed <= 12; seed++) {
      const { boxes, scores, idxs } = randomCase(seed * 7 + 1);
      const n = scores.length;
      for (const thr of [0.3, 0.5, 0.7]) {
        // reference: brute NMS per class, kept merged by descending score (ties by index, as a stable sort would)
        const keepMask = new Uint8Array(n);
        for (const c of new Set(idxs)) {
          const members = Array.from(idxs.keys()).filter((i) => idxs[i] === c);
          const b = new Float32Array(members.flatMap((i) => Array.from(boxes.subarray(i * 4, i * 4 + 4))));
          const s = new Float32Array(members.map((i) => scores[i]));
          for (const k of nms(b, s, thr, { strategy: 'brute' })) keepMask[members[k]] = 1;
        }
        const want = Array.from(keepMask.keys()).filter((i) => keepMask[i]).sort((a, b) => scores[b] - scores[a] || a - b);
        // torchvision's final sort is unstable: compare as sets plus the score order
        const got = Array.from(batchedNms(boxes, scores, idxs, thr));
        expect([...got].sort((a, b) => a - b), `seed ${seed} thr ${thr}`).toEqual([...want].sort((a, b) => a - b));
        for (let k = 1; k < got.length; k++) expect(scores[got[k - 1]]).toBeGreaterThanOrEqual(scores[got[k]]);
      }
    }
  });
});

describe('argsortDescending fast path (radix order when there are no ties)', () => {
  it('equals the std::sort replay on tie-free inputs, and on inputs with ties, NaN, -0', () => {
    const rnd = mulberry32(7);
    for (let t = 0; t < 40; t++) {
      const n = 33 + Math.floor(rnd() * 3000);
      const v = new Float32Array(n);
      const kind = t % 4;
      for (let i = 0; i < n; i++) {
        v[i] = kind === 0 ? rnd() : kind === 1 ? (rnd() - 0.5) * 1e6 : Math.floor(rnd() * 50) / 7;
        if (kind === 3 && i % 97 === 0) v[i] = [NaN, -0, 0, Infinity, -Infinity][i % 5];
      }
      const keys = Float64Array.from(v);
      const idx = Int32Array.from({ length: n }, (_, i) => i);
      sortPairsDescending(keys, idx, 0, n);
      expect(Array.from(argsortDescending(v)), `case ${t}`).toEqual(Array.from(idx));
    }
  });
});

describe('bench nms', () => {
  it('runs a small case and reports kept counts equal to calling NMS directly', () => {
    const rows = runBenchNms({ boxes: 300, runs: 2, torch: false, print: false });
    expect(rows.length).toBe(8);
    for (const r of rows) {
      expect(Object.keys(r).sort()).toEqual(['boxes', 'case', 'flavor', 'kept', 'ms_median', 'ms_min']);
      expect(['torchvision', 'mmcv']).toContain(r.flavor);
      expect(r.ms_median).toBeGreaterThan(0);
      expect(r.ms_min).toBeLessThanOrEqual(r.ms_median);
    }
    expect(rows.map((r) => r.case)).toEqual(['rpn', 'rpn', 'box_head', 'box_head', 'single_0.5', 'single_0.5', 'single_0.7', 'single_0.7']);
  });
});
