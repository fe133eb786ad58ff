/**
 * COCOeval.evaluate + accumulate for iouType bbox and segm, with pycocotools' exact rules:
 * - per image and category: detections sorted by score (descending, stable) and cut at maxDets[-1]; GTs
 *   with ignore = iscrowd or area (the GT's `area` field) outside the range, ignored ones last (stable);
 * - greedy matching per IoU threshold: a detection takes the best remaining GT with IoU >= t, a later GT
 *   with an equal IoU wins, it never leaves a normal GT for an ignored one, crowd GTs match any number of
 *   times; a match is recorded by GT id, so a GT with id 0 is used up yet its detection is unmatched;
 * - accumulate: a category's detections over all images (ascending image id, each cut at maxDet) stably
 *   sorted by score; precision = tp / (tp + fp + eps), its envelope taken right to left, sampled at the 101
 *   recall thresholds with searchsorted(side='left'); -1 where a category has no non-ignored GT.
 *
 * Instead of COCOeval's dict per (image, category, area range) this works category by category over
 * typed arrays: detections and GTs are bucketed by (category, image) with two counting-sort passes, each
 * (image, category) pair is matched once per area range, and each category's detections are sorted once
 * (the maxDets=1 and 10 orders are subsequences of the maxDets=100 order, since the sort is stable).
 */
import { bboxIou, iou as maskIou, type RLE } from '../postprocess/mask.ts';
import type { CocoGt } from './coco.ts';
import { dtRle, resolveDt, toRle, type CocoDt } from './load_res.ts';
import { defaultParams, type EvalParams, type IouType } from './params.ts';
import { categoryAp, computeStats, type NdArray } from './summary.ts';

export interface CocoEvalOutput {
  iouType: IouType;
  params: EvalParams;
  /** precision[T, R, K, A, M] (iou thresholds, recall thresholds, categories, area ranges, maxDets). */
  precision: NdArray;
  /** recall[T, K, A, M]. */
  recall: NdArray;
  /** The 12 COCO stats, pycocotools order. */
  stats: number[];
  /** AP@[.5:.95] per category index (same order as gt.categoryIds), -1 without non-ignored GT. */
  perCategoryAp: Float64Array;
}

const EPS = 2.220446049250313e-16; // np.spacing(1)
const IGNORED = 0;
const TP = 1;
const FP = 2;

/** Indices 0..n-1 stably ordered by (cat, img), with each category's start: two counting-sort passes. */
export function orderByCatImg(
  cat: Int32Array,
  img: Int32Array,
  nCat: number,
  nImg: number,
): { order: Int32Array; catStart: Int32Array } {
  const n = cat.length;
  const byImg = new Int32Array(n);
  const imgStart = new Int32Array(nImg + 1);
  for (let i = 0; i < n; i++) imgStart[img[i] + 1]++;
  for (let k = 0; k < nImg; k++) imgStart[k + 1] += imgStart[k];
  for (let i = 0; i < n; i++) byImg[imgStart[img[i]]++] = i;
  const order = new Int32Array(n);
  const catStart = new Int32Array(nCat + 1);
  for (let i = 0; i < n; i++) catStart[cat[i] + 1]++;
  for (let k = 0; k < nCat; k++) catStart[k + 1] += catStart[k];
  const fill = catStart.slice(0, nCat);
  for (let j = 0; j < n; j++) {
    const i = byImg[j];
    order[fill[cat[i]]++] = i;
  }
  return { order, catStart };
}

/** Stable descending sort of idx[0..n) by score (numpy argsort(-score, kind='mergesort')). */
function sortByScoreDesc(idx: Int32Array, n: number, score: Float64Array): void {
  if (n < 48) {
    for (let i = 1; i < n; i++) {
      const v = idx[i];
      const s = score[v];
      let j = i - 1;
      while (j >= 0 && score[idx[j]] < s) {
        idx[j + 1] = idx[j];
        j--;
      }
      idx[j + 1] = v;
    }
    return;
  }
  // Array.prototype.sort is stable (TimSort); typed-array sort with a comparator is not guaranteed to be.
  const tmp = Array.from(idx.subarray(0, n));
  tmp.sort((a, b) => score[b] - score[a]);
  idx.set(tmp);
}

/** A growable scratch buffer. */
function ensure<T extends Int32Array | Float64Array | Uint8Array>(buf: T, n: number, make: (n: number) => T): T {
  return buf.length >= n ? buf : make(Math.max(n, 2 * buf.length));
}

/**
 * Runs COCOeval (evaluate + accumulate + summarize) on all GT images and categories.
 * `gt` and `dt` must have been loaded for this iouType (loadGt/loadRes `iouTypes`).
 */
export function cocoEval(gt: CocoGt, dt: CocoDt, iouType: IouType, params: EvalParams = defaultParams()): CocoEvalOutput {
  if (!gt.iouTypes.includes(iouType)) throw new Error(`the GT was not loaded for iouType ${iouType}`);
  const segm = iouType === 'segm';
  const { iouThrs, recThrs, areaRng } = params;
  const maxDets = [...params.maxDets].sort((a, b) => a - b);
  const maxDet = maxDets[maxDets.length - 1];
  const T = iouThrs.length;
  const R = recThrs.length;
  const A = areaRng.length;
  const M = maxDets.length;
  const nImg = gt.imageIds.length;
  const K = gt.categoryIds.length;
  const AT = A * T;
  const thr = Float64Array.from(iouThrs, (t) => Math.min(t, 1 - 1e-10));

  const precision = new Float64Array(T * R * K * A * M).fill(-1);
  const recall = new Float64Array(T * K * A * M).fill(-1);

  const ga = gt.anns;
  const gOrd = orderByCatImg(ga.cat, ga.img, K, nImg);
  const dOrd = orderByCatImg(dt.cat, dt.img, K, nImg);

  let maxCatDt = 0;
  for (let k = 0; k < K; k++) maxCatDt = Math.max(maxCatDt, dOrd.catStart[k + 1] - dOrd.catStart[k]);
  // Per category: each kept detection's result index, score, rank within its image, and its outcome
  // (IGNORED/TP/FP) for every (area range, threshold).
  const catScore = new Float64Array(maxCatDt);
  const catRank = new Int32Array(maxCatDt);
  const outcome = new Uint8Array(maxCatDt * AT);
  let unitDt = new Int32Array(256);
  let dtBoxes = new Float64Array(4 * 128);
  let gtBoxes = new Float64Array(4 * 128);
  let crowd = new Uint8Array(128);
  let gtPerm = new Int32Array(128);
  let gtIgSorted = new Uint8Array(128);
  let gtUsed = new Uint8Array(128);
  let dtOut = new Uint8Array(128);
  const npig = new Float64Array(A);
  let rc = new Float64Array(1024);
  let pr = new Float64Array(1024);
  let perm: number[] = [];

  for (let k = 0; k < K; k++) {
    let gi = gOrd.catStart[k];
    const gEnd = gOrd.catStart[k + 1];
    let di = dOrd.catStart[k];
    const dEnd = dOrd.catStart[k + 1];
    if (gi === gEnd && di === dEnd) continue; // no evalImgs entry: precision stays -1
    npig.fill(0);
    let nCat = 0;

    while (gi < gEnd || di < dEnd) {
      const imG = gi < gEnd ? ga.img[gOrd.order[gi]] : nImg;
      const imD = di < dEnd ? dt.img[dOrd.order[di]] : nImg;
      const im = Math.min(imG, imD);
      const g0 = gi;
      while (gi < gEnd && ga.img[gOrd.order[gi]] === im) gi++;
      const d0 = di;
      while (di < dEnd && dt.img[dOrd.order[di]] === im) di++;
      const G = gi - g0;
      const nD = di - d0;

      unitDt = ensure(unitDt, nD, (n) => new Int32Array(n));
      unitDt.set(dOrd.order.subarray(d0, di));
      sortByScoreDesc(unitDt, nD, dt.score);
      const D = Math.min(nD, maxDet);

      // IoU matrix [D][G], detections in score order, GTs in file order (COCOeval.computeIoU).
      let ious: Float64Array | null = null;
      if (D > 0 && G > 0) {
        crowd = ensure(crowd, G, (n) => new Uint8Array(n));
        for (let g = 0; g < G; g++) crowd[g] = ga.iscrowd[gOrd.order[g0 + g]];
        if (segm) {
          const dR: RLE[] = new Array(D);
          for (let j = 0; j < D; j++) dR[j] = dtRle(gt, dt, unitDt[j]);
          const gR: RLE[] = new Array(G);
          for (let g = 0; g < G; g++) {
            const a = gOrd.order[g0 + g];
            gR[g] = toRle(ga.segm[a]!, gt.heights[im], gt.widths[im], `GT annotation ${ga.id[a]}`);
          }
          ious = maskIou(dR, gR, crowd.subarray(0, G));
        } else {
          dtBoxes = ensure(dtBoxes, 4 * D, (n) => new Float64Array(n));
          gtBoxes = ensure(gtBoxes, 4 * G, (n) => new Float64Array(n));
          for (let j = 0; j < D; j++) {
            const r = unitDt[j];
            resolveDt(gt, dt, r, true);
            dtBoxes.set(dt.bbox.subarray(4 * r, 4 * r + 4), 4 * j);
          }
          for (let g = 0; g < G; g++) {
            const a = gOrd.order[g0 + g];
            gtBoxes.set(ga.bbox.subarray(4 * a, 4 * a + 4), 4 * g);
          }
          ious = bboxIou(dtBoxes.subarray(0, 4 * D), gtBoxes.subarray(0, 4 * G), crowd.subarray(0, G));
        }
      } else {
        for (let j = 0; j < D; j++) resolveDt(gt, dt, unitDt[j], false);
      }

      for (let j = 0; j < D; j++) {
        catScore[nCat + j] = dt.score[unitDt[j]];
        catRank[nCat + j] = j;
      }

      gtPerm = ensure(gtPerm, G, (n) => new Int32Array(n));
      gtIgSorted = ensure(gtIgSorted, G, (n) => new Uint8Array(n));
      gtUsed = ensure(gtUsed, G, (n) => new Uint8Array(n));
      dtOut = ensure(dtOut, D, (n) => new Uint8Array(n));
      for (let a = 0; a < A; a++) {
        const lo = areaRng[a][0];
        const hi = areaRng[a][1];
        // GTs: non-ignored first, ignored last, each in file order (argsort mergesort of _ignore).
        let p = 0;
        for (let g = 0; g < G; g++) {
          const r = gOrd.order[g0 + g];
          const ar = ga.area[r];
          if (!(ga.iscrowd[r] || ar < lo || ar > hi)) gtPerm[p++] = g;
        }
        npig[a] += p;
        const nNormal = p;
        for (let g = 0; g < G; g++) {
          const r = gOrd.order[g0 + g];
          const ar = ga.area[r];
          if (ga.iscrowd[r] || ar < lo || ar > hi) gtPerm[p++] = g;
        }
        for (let q = 0; q < G; q++) gtIgSorted[q] = q < nNormal ? 0 : 1;
        for (let j = 0; j < D; j++) {
          const ar = dt.area[unitDt[j]];
          dtOut[j] = ar < lo || ar > hi ? 1 : 0;
        }
        for (let t = 0; t < T; t++) {
          gtUsed.fill(0, 0, G);
          for (let j = 0; j < D; j++) {
            let code: number;
            let m = -1;
            if (ious !== null) {
              let best = thr[t];
              const row = j * G;
              for (let q = 0; q < G; q++) {
                const g = gtPerm[q];
                if (gtUsed[q] && !crowd[g]) continue;
                if (m > -1 && gtIgSorted[m] === 0 && gtIgSorted[q] === 1) break;
                const v = ious[row + g];
                if (v < best) continue;
                best = v;
                m = q;
              }
            }
            if (m === -1) {
              code = dtOut[j] ? IGNORED : FP;
            } else {
              gtUsed[m] = 1;
              if (gtIgSorted[m]) code = IGNORED;
              else if (ga.id[gOrd.order[g0 + gtPerm[m]]] !== 0) code = TP;
              else code = dtOut[j] ? IGNORED : FP; // matched to GT id 0: recorded as unmatched
            }
            outcome[(nCat + j) * AT + a * T + t] = code;
          }
        }
      }
      nCat += D;
    }

    // accumulate
    if (perm.length !== nCat) perm = new Array(nCat);
    for (let i = 0; i < nCat; i++) perm[i] = i;
    perm.sort((x, y) => catScore[y] - catScore[x]);
    rc = ensure(rc, nCat, (n) => new Float64Array(n));
    pr = ensure(pr, nCat, (n) => new Float64Array(n));
    for (let m = 0; m < M; m++) {
      const cut = maxDets[m];
      const kept: number[] = [];
      for (const i of perm) if (catRank[i] < cut) kept.push(i);
      const nd = kept.length;
      for (let a = 0; a < A; a++) {
        const np = npig[a];
        if (np === 0) continue;
        for (let t = 0; t < T; t++) {
          const col = a * T + t;
          let tp = 0;
          let fp = 0;
          for (let i = 0; i < nd; i++) {
            const c = outcome[kept[i] * AT + col];
            if (c === TP) tp++;
            else if (c === FP) fp++;
            rc[i] = tp / np;
            pr[i] = tp / (fp + tp + EPS);
          }
          recall[((t * K + k) * A + a) * M + m] = nd ? rc[nd - 1] : 0;
          for (let i = nd - 1; i > 0; i--) if (pr[i] > pr[i - 1]) pr[i - 1] = pr[i];
          let pi = 0;
          for (let r = 0; r < R; r++) {
            const v = recThrs[r];
            while (pi < nd && rc[pi] < v) pi++;
            const at = (((t * R + r) * K + k) * A + a) * M + m;
            precision[at] = pi < nd ? pr[pi] : 0;
          }
        }
      }
    }
  }

  const P: NdArray = { shape: [T, R, K, A, M], data: precision };
  const Rc: NdArray = { shape: [T, K, A, M], data: recall };
  const perCategoryAp = new Float64Array(K);
  for (let k = 0; k < K; k++) perCategoryAp[k] = categoryAp(P, k);
  return { iouType, params: { ...params, maxDets }, precision: P, recall: Rc, stats: computeStats(P, Rc, { ...params, maxDets }), perCategoryAp };
}
