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
import { dtRle, resolveDt, toRle, type CocoDt, type CountsArena } from './load_res.ts';
import { defaultParams, type EvalParams, type IouType } from './params.ts';
import { categoryAp, computeStats, type NdArray } from './summary.ts';
import { argsortDesc, orderByCatImg, type CatImgOrder, type SortScratch } from './order.ts';

export { argsortDesc, orderByCatImg } from './order.ts';

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
/** Outcomes of one detection in one area range, packed: bit t = TP at threshold t, bit T + t = counted
 * (TP or FP, i.e. not ignored) at threshold t. At most 16 thresholds fit. */
const MAX_THRESHOLDS = 16;

/** Everything one evaluation run shares: inputs, parameters, outputs and scratch buffers sized once. */
interface Ctx {
  gt: EvalGt;
  dt: CocoDt;
  segm: boolean;
  thr: Float64Array;
  recThrs: Float64Array;
  areaRng: Array<[number, number]>;
  maxDets: number[];
  maxDet: number;
  T: number;
  R: number;
  K: number;
  A: number;
  M: number;
  gOrder: Int32Array;
  dOrder: Int32Array;
  precision: Float64Array;
  recall: Float64Array;
  /** Non-ignored GT count per area range for the current category. */
  npig: Float64Array;
  // The current category's (image, category) units in ascending image order: image index, its GTs
  // (gOrder[g0 .. g0 + nG)) and its kept detections (catDt[d0 .. d0 + nD), in score order).
  nUnits: number;
  unitIm: Int32Array;
  unitG0: Int32Array;
  unitNG: Int32Array;
  unitD0: Int32Array;
  unitND: Int32Array;
  /** Unit index of an image within the current category (valid for the category's images only). */
  imgUnit: Int32Array;
  /** Detections of a unit seen so far while walking the category in score order. */
  unitSeen: Int32Array;
  // Kept detections of the current category, unit after unit, each unit's in score order: result index,
  // and position in the category's score order (accumulate's stable sort).
  cap: number;
  catDt: Int32Array;
  pos: Int32Array;
  /** The category's detections' scores (dOrder order) and their stable descending argsort. */
  catScore: Float64Array;
  perm: Int32Array;
  /** Per maxDets index m < M - 1: score-order positions of the kept detections counted under maxDets[m]. */
  mList: Int32Array[];
  mCount: Int32Array;
  /** Packed outcomes (see MAX_THRESHOLDS) per area range and score-order position: [a * cap + i]. */
  outcome: Uint32Array;
  /** Positions accumulate scans for one (area range, maxDets). */
  live: Int32Array;
  // One unit.
  crowd: Uint8Array;
  gtPerm: Int32Array;
  gtIg: Uint8Array;
  gtUsed: Uint8Array;
  dtOut: Uint8Array;
  sort: SortScratch;
  // Accumulation of one column.
  fpAtTp: Float64Array;
  env: Float64Array;
  jStar: Int32Array;
  /** Counts of the current unit's masks (detections and GT). */
  arena: CountsArena;
  /** The current unit's IoU matrix and boxes (bbox): scratch, as a typed array allocation per unit costs. */
  iouOut: Float64Array;
  dBox: Float64Array;
  gBox: Float64Array;
}

/**
 * IoU matrix [D][G] of a unit (image im; its GTs at gOrder[g0 ..], its kept detections at catDt[d0 ..]):
 * detections in score order, GTs in file order (COCOeval.computeIoU).
 */
function unitIous(c: Ctx, im: number, g0: number, G: number, d0: number, D: number): Float64Array {
  const { gt, dt, gOrder, catDt, crowd } = c;
  const ga = gt.anns;
  for (let g = 0; g < G; g++) crowd[g] = ga.iscrowd[gOrder[g0 + g]];
  if (c.segm) {
    const dR: RLE[] = new Array(D);
    c.arena.used = 0; // the unit's masks are dropped once its IoUs are known
    for (let j = 0; j < D; j++) dR[j] = dtRle(gt, dt, catDt[d0 + j], c.arena);
    const gR: RLE[] = new Array(G);
    for (let g = 0; g < G; g++) {
      const a = gOrder[g0 + g];
      gR[g] = ga.rle?.[a] ?? toRle(ga.segm[a]!, gt.heights[im], gt.widths[im], `${gt.name ?? 'GT'}: annotation id ${ga.id[a]}`, c.arena);
    }
    return maskIou(dR, gR, crowd.subarray(0, G), c.iouOut);
  }
  const db = c.dBox.subarray(0, 4 * D);
  const gb = c.gBox.subarray(0, 4 * G);
  for (let j = 0; j < D; j++) {
    const r = catDt[d0 + j];
    if (Number.isNaN(dt.bbox[4 * r])) resolveDt(gt, dt, r, true);
    for (let q = 0; q < 4; q++) db[4 * j + q] = dt.bbox[4 * r + q];
  }
  for (let g = 0; g < G; g++) {
    const a = gOrder[g0 + g];
    for (let q = 0; q < 4; q++) gb[4 * g + q] = ga.bbox[4 * a + q];
  }
  return bboxIou(db, gb, crowd.subarray(0, G), c.iouOut);
}

/**
 * Lists category k's units (images with GT or detections of k, ascending) and their kept detections.
 * One stable descending score sort over all the category's detections (in image, then file order) gives
 * both COCOeval orders at once: restricted to one image it is evaluateImg's per-image sort, whose first
 * maxDets[-1] are kept, and restricted to the kept ones it is accumulate's sort of their concatenation.
 * Returns how many detections the category keeps.
 */
function collectUnits(c: Ctx, k: number, gStart: Int32Array, dStart: Int32Array): number {
  const nCat = findUnits(c, k, gStart, dStart);
  const d0 = dStart[k];
  const nD = dStart[k + 1] - d0;
  const { catScore, dOrder } = c;
  const score = c.dt.score;
  for (let j = 0; j < nD; j++) catScore[j] = score[dOrder[d0 + j]];
  argsortDesc(catScore, nD, c.perm, c.sort);
  placeKept(c, d0, nD);
  return nCat;
}

/** The units of category k and each one's slot range for kept detections; returns the kept total. */
function findUnits(c: Ctx, k: number, gStart: Int32Array, dStart: Int32Array): number {
  const { gt, dt, gOrder, dOrder, maxDet, imgUnit, unitSeen } = c;
  const gImg = gt.anns.img;
  const dImg = dt.img;
  const nImg = gt.imageIds.length;
  let gi = gStart[k];
  const gEnd = gStart[k + 1];
  let di = dStart[k];
  const dEnd = dStart[k + 1];
  let nUnits = 0;
  let nCat = 0;
  while (gi < gEnd || di < dEnd) {
    const imG = gi < gEnd ? gImg[gOrder[gi]] : nImg;
    const imD = di < dEnd ? dImg[dOrder[di]] : nImg;
    const im = imG < imD ? imG : imD;
    const g0 = gi;
    while (gi < gEnd && gImg[gOrder[gi]] === im) gi++;
    const d0 = di;
    while (di < dEnd && dImg[dOrder[di]] === im) di++;
    const D = di - d0 < maxDet ? di - d0 : maxDet;
    imgUnit[im] = nUnits;
    unitSeen[nUnits] = 0;
    c.unitIm[nUnits] = im;
    c.unitG0[nUnits] = g0;
    c.unitNG[nUnits] = gi - g0;
    c.unitD0[nUnits] = nCat;
    c.unitND[nUnits] = D;
    nUnits++;
    nCat += D;
  }
  c.nUnits = nUnits;
  return nCat;
}

/**
 * Walks the category's detections (dOrder[d0 .. d0 + nD)) in score order (c.perm): the first maxDets[-1]
 * of each image are kept, at their unit's next slot, with their position among the kept ones.
 */
function placeKept(c: Ctx, d0: number, nD: number): void {
  const { dOrder, perm, imgUnit, unitSeen, maxDet, maxDets, M, mList, mCount, catDt, pos, unitD0 } = c;
  const dImg = c.dt.img;
  mCount.fill(0);
  let i = 0; // position among the kept detections, in score order
  for (let q = 0; q < nD; q++) {
    const d = dOrder[d0 + perm[q]];
    const u = imgUnit[dImg[d]];
    const rank = unitSeen[u]++;
    if (rank >= maxDet) continue;
    const slot = unitD0[u] + rank;
    catDt[slot] = d;
    pos[slot] = i;
    // Counted under maxDets[m] for every m with rank < maxDets[m].
    for (let m = M - 2; m >= 0 && rank < maxDets[m]; m--) mList[m][mCount[m]++] = i;
    i++;
  }
}

/**
 * COCOeval.evaluateImg for unit u and every area range: writes each kept detection's outcome per
 * (area range, threshold) at its score-order position, and adds the unit's non-ignored GTs to npig.
 */
function evaluateUnit(c: Ctx, u: number): void {
  const { gt, dt, gOrder, A, T, areaRng, thr, catDt, pos, outcome, cap } = c;
  const { gtPerm, gtIg, gtUsed, dtOut, crowd } = c;
  const ga = gt.anns;
  const g0 = c.unitG0[u];
  const G = c.unitNG[u];
  const d0 = c.unitD0[u];
  const D = c.unitND[u];
  let ious: Float64Array | null = null;
  if (D > 0 && G > 0) ious = unitIous(c, c.unitIm[u], g0, G, d0, D);
  else if (!dt.boxBranch) {
    // areas from masks are known only once decoded (the box branch has them all)
    for (let j = 0; j < D; j++) if (Number.isNaN(dt.area[catDt[d0 + j]])) resolveDt(gt, dt, catDt[d0 + j], false);
  }

  const counted = ((1 << T) - 1) << T; // FP at every threshold
  for (let a = 0; a < A; a++) {
    const lo = areaRng[a][0];
    const hi = areaRng[a][1];
    const o = a * cap;
    // GTs: non-ignored first, ignored last, each in file order (argsort mergesort of _ignore).
    let p = 0;
    for (let g = 0; g < G; g++) {
      const r = gOrder[g0 + g];
      const ar = ga.area[r];
      if (!(ga.iscrowd[r] || ar < lo || ar > hi)) gtPerm[p++] = g;
    }
    const nNormal = p;
    c.npig[a] += nNormal;
    if (D === 0) continue;
    for (let j = 0; j < D; j++) {
      const ar = dt.area[catDt[d0 + j]];
      dtOut[j] = ar < lo || ar > hi ? 1 : 0;
    }
    if (ious === null) {
      // Nothing to match: a detection is a false positive unless outside the area range.
      for (let j = 0; j < D; j++) outcome[o + pos[d0 + j]] = dtOut[j] ? 0 : counted;
      continue;
    }
    for (let j = 0; j < D; j++) outcome[o + pos[d0 + j]] = 0;
    for (let g = 0; g < G; g++) {
      const r = gOrder[g0 + g];
      const ar = ga.area[r];
      if (ga.iscrowd[r] || ar < lo || ar > hi) gtPerm[p++] = g;
    }
    for (let q = 0; q < G; q++) gtIg[q] = q < nNormal ? 0 : 1;
    for (let t = 0; t < T; t++) {
      for (let q = 0; q < G; q++) gtUsed[q] = 0; // G is small: a loop beats a fill() call, 40 a unit
      const tpBit = 1 << t;
      const fpBit = 1 << (T + t);
      for (let j = 0; j < D; j++) {
        let best = thr[t];
        let m = -1;
        const row = j * G;
        for (let q = 0; q < G; q++) {
          const g = gtPerm[q];
          if (gtUsed[q] && !crowd[g]) continue;
          if (m > -1 && gtIg[m] === 0 && gtIg[q] === 1) break;
          const v = ious[row + g];
          if (v < best) continue;
          best = v;
          m = q;
        }
        let bits: number;
        if (m === -1) {
          bits = dtOut[j] ? 0 : fpBit;
        } else {
          gtUsed[m] = 1;
          if (gtIg[m]) bits = 0;
          else if (ga.id[gOrder[g0 + gtPerm[m]]] !== 0) bits = tpBit | fpBit;
          else bits = dtOut[j] ? 0 : fpBit; // matched to GT id 0: recorded as unmatched
        }
        outcome[o + pos[d0 + j]] |= bits;
      }
    }
  }
}

/**
 * Scans packed outcomes (score order) at threshold bit t over the listed positions and leaves, for the
 * j-th TP, the number of FPs before it in fpAtTp[j]. Returns the TP count. Branch-free: slot tp + 1 is
 * rewritten at every entry and last written by the TP that then takes it.
 */
function scanColumn(
  outcome: Uint32Array,
  base: number,
  t: number,
  T: number,
  list: Int32Array,
  n: number,
  fpAtTp: Float64Array,
): number {
  let tp = 0;
  let seen = 0; // TPs and FPs so far
  const ts = T + t;
  for (let q = 0; q < n; q++) {
    const w = outcome[base + list[q]];
    fpAtTp[tp + 1] = seen - tp;
    tp += (w >>> t) & 1;
    seen += (w >>> ts) & 1;
  }
  return tp;
}

/**
 * COCOeval.accumulate for category k over its nCat kept detections, computed from the true positives only.
 * Along the score-sorted list, recall changes only at a TP, and the precision at an FP or ignored entry is
 * at most that of the TP before it (ignored entries repeat the previous point, or add (0, 0) in front),
 * so: the first index with recall >= v (searchsorted left) is the j-th TP for the smallest j with
 * j / npig >= v, or index 0 for v = 0; and the right-to-left precision envelope there is the maximum of
 * j' / (fp_j' + j' + eps) over TPs j' >= j. Same numbers, same float operations as pycocotools, without
 * materialising the per-detection curves.
 */
function accumulateCategory(c: Ctx, k: number, nCat: number): void {
  const { T, R, K, A, M, recThrs, outcome, precision, recall, cap, mList, mCount, live } = c;
  const { fpAtTp, env, jStar } = c;
  for (let a = 0; a < A; a++) {
    const npig = c.npig[a];
    if (npig === 0) continue;
    // Smallest TP count j with j / npig >= recThrs[r] (nCat + 1: never reached).
    let j = 1;
    for (let r = 0; r < R; r++) {
      while (j <= nCat && j / npig < recThrs[r]) j++;
      jStar[r] = j;
    }
    // Largest maxDets first: a smaller one counting every kept detection gives the same numbers.
    for (let m = M - 1; m >= 0; m--) {
      const all = m === M - 1 || mCount[m] === nCat;
      if (all && m < M - 1) {
        for (let t = 0; t < T; t++) {
          recall[((t * K + k) * A + a) * M + m] = recall[((t * K + k) * A + a) * M + M - 1];
          for (let r = 0; r < R; r++) {
            const at = (((t * R + r) * K + k) * A + a) * M;
            precision[at + m] = precision[at + M - 1];
          }
        }
        continue;
      }
      // Positions that count under maxDets[m] and are a TP or FP at some threshold: the others (ignored
      // at every threshold, most detections outside a small/medium/large range) change nothing.
      const base = a * cap;
      let nLive = 0;
      if (all) {
        for (let i = 0; i < nCat; i++) if (outcome[base + i] !== 0) live[nLive++] = i;
      } else {
        const list = mList[m];
        for (let q = 0; q < mCount[m]; q++) if (outcome[base + list[q]] !== 0) live[nLive++] = list[q];
      }
      for (let t = 0; t < T; t++) {
        const nTp = scanColumn(outcome, base, t, T, live, nLive, fpAtTp);
        // env[j] = max over TPs j' >= j of the precision tp / (fp + tp + eps) there.
        let best = 0;
        for (let q = nTp; q >= 1; q--) {
          const pr = q / (fpAtTp[q] + q + EPS);
          if (pr > best) best = pr;
          env[q] = best;
        }
        recall[((t * K + k) * A + a) * M + m] = nTp / npig;
        for (let r = 0; r < R; r++) {
          const js = recThrs[r] <= 0 ? 1 : jStar[r];
          precision[(((t * R + r) * K + k) * A + a) * M + m] = js <= nTp ? env[js] : 0;
        }
      }
    }
  }
}

/** Longest run of one image in a (category, image)-ordered index: an upper bound on a unit's size. */
function maxRun(order: Int32Array, img: Int32Array): number {
  let best = 0;
  let run = 0;
  for (let i = 0; i < order.length; i++) {
    run = i > 0 && img[order[i]] === img[order[i - 1]] ? run + 1 : 1;
    if (run > best) best = run;
  }
  return best;
}

/** What evaluate + accumulate produce: precision [T, R, K, A, M] and recall [T, K, A, M], -1 where unset. */
export interface Accumulated {
  params: EvalParams;
  precision: Float64Array;
  recall: Float64Array;
}

/** The GT fields evaluation reads (a CocoGt has them; worker threads get just these). */
export type EvalGt = Pick<CocoGt, 'imageIds' | 'heights' | 'widths' | 'categoryIds' | 'anns' | 'iouTypes' | 'name'>;

/** Parameters with maxDets sorted, as COCOeval.evaluate does; checks what the outcome packing allows. */
export function evalParams(params: EvalParams): EvalParams {
  const maxDets = [...params.maxDets].sort((a, b) => a - b);
  if (params.iouThrs.length > MAX_THRESHOLDS) {
    throw new Error(`at most ${MAX_THRESHOLDS} IoU thresholds are supported, got ${params.iouThrs.length}`);
  }
  return { ...params, maxDets };
}

/**
 * COCOeval.evaluate + accumulate for the given category indices (all by default), writing their
 * precision/recall into `into` (or new arrays filled with -1). Categories are independent, which lets
 * worker threads split them.
 */
export function accumulateCategories(
  gt: EvalGt,
  dt: CocoDt,
  iouType: IouType,
  params: EvalParams,
  categories?: ArrayLike<number>,
  into?: { precision: Float64Array; recall: Float64Array },
): Accumulated {
  if (!gt.iouTypes.includes(iouType)) throw new Error(`the GT was not loaded for iouType ${iouType}`);
  const p = evalParams(params);
  const K = gt.categoryIds.length;
  const nImg = gt.imageIds.length;
  const gOrd = orderByCatImg(gt.anns.cat, gt.anns.img, K, nImg);
  const dOrd = orderByCatImg(dt.cat, dt.img, K, nImg);
  const c = evalContext(gt, dt, iouType, p, gOrd, dOrd, into);
  const ks = categories ?? Array.from({ length: K }, (_, k) => k);
  for (let q = 0; q < ks.length; q++) {
    const k = ks[q];
    if (gOrd.catStart[k] === gOrd.catStart[k + 1] && dOrd.catStart[k] === dOrd.catStart[k + 1]) {
      continue; // no evalImgs entry: precision stays -1
    }
    const nCat = collectUnits(c, k, gOrd.catStart, dOrd.catStart);
    c.npig.fill(0);
    for (let u = 0; u < c.nUnits; u++) evaluateUnit(c, u);
    accumulateCategory(c, k, nCat);
  }
  return { params: p, precision: c.precision, recall: c.recall };
}

/** The evaluation state with scratch arrays sized for the largest category and image (see Ctx). */
function evalContext(
  gt: EvalGt, dt: CocoDt, iouType: IouType, p: EvalParams, gOrd: CatImgOrder, dOrd: CatImgOrder,
  into: { precision: Float64Array; recall: Float64Array } | undefined,
): Ctx {
  const maxDets = p.maxDets;
  const T = p.iouThrs.length;
  const R = p.recThrs.length;
  const A = p.areaRng.length;
  const M = maxDets.length;
  const maxDet = maxDets[M - 1];
  const nImg = gt.imageIds.length;
  const K = gt.categoryIds.length;
  const ga = gt.anns;
  const maxUnitG = maxRun(gOrd.order, ga.img);
  const maxUnitD = maxRun(dOrd.order, dt.img);
  let cap = 0;
  for (let k = 0; k < K; k++) cap = Math.max(cap, dOrd.catStart[k + 1] - dOrd.catStart[k]);
  return {
    gt,
    dt,
    segm: iouType === 'segm',
    thr: Float64Array.from(p.iouThrs, (t) => Math.min(t, 1 - 1e-10)),
    recThrs: p.recThrs,
    areaRng: p.areaRng,
    maxDets,
    maxDet,
    T,
    R,
    K,
    A,
    M,
    gOrder: gOrd.order,
    dOrder: dOrd.order,
    live: new Int32Array(cap),
    precision: into?.precision ?? new Float64Array(T * R * K * A * M).fill(-1),
    recall: into?.recall ?? new Float64Array(T * K * A * M).fill(-1),
    npig: new Float64Array(A),
    nUnits: 0,
    unitIm: new Int32Array(nImg),
    unitG0: new Int32Array(nImg),
    unitNG: new Int32Array(nImg),
    unitD0: new Int32Array(nImg),
    unitND: new Int32Array(nImg),
    imgUnit: new Int32Array(nImg),
    unitSeen: new Int32Array(nImg),
    cap,
    catDt: new Int32Array(cap),
    pos: new Int32Array(cap),
    catScore: new Float64Array(cap),
    perm: new Int32Array(cap),
    mList: Array.from({ length: Math.max(0, M - 1) }, () => new Int32Array(cap)),
    mCount: new Int32Array(M),
    outcome: new Uint32Array(cap * A),
    crowd: new Uint8Array(maxUnitG),
    gtPerm: new Int32Array(maxUnitG),
    gtIg: new Uint8Array(maxUnitG),
    gtUsed: new Uint8Array(maxUnitG),
    dtOut: new Uint8Array(Math.min(maxUnitD, maxDet)),
    sort: { sorted: new Float64Array(cap), fill: new Int32Array(cap + 1) },
    fpAtTp: new Float64Array(cap + 2),
    env: new Float64Array(cap + 1),
    jStar: new Int32Array(R),
    arena: { buf: new Uint32Array(1 << 16), used: 0 },
    iouOut: new Float64Array(Math.min(maxUnitD, maxDet) * maxUnitG),
    dBox: new Float64Array(4 * Math.min(maxUnitD, maxDet)),
    gBox: new Float64Array(4 * maxUnitG),
  };
}

/** COCOeval.summarize and per-category AP on accumulated arrays. */
export function finishEval(iouType: IouType, acc: Accumulated, K: number): CocoEvalOutput {
  const p = acc.params;
  const [T, R, A, M] = [p.iouThrs.length, p.recThrs.length, p.areaRng.length, p.maxDets.length];
  const precision: NdArray = { shape: [T, R, K, A, M], data: acc.precision };
  const recall: NdArray = { shape: [T, K, A, M], data: acc.recall };
  const perCategoryAp = new Float64Array(K);
  for (let k = 0; k < K; k++) perCategoryAp[k] = categoryAp(precision, k);
  return { iouType, params: p, precision, recall, stats: computeStats(precision, recall, p), perCategoryAp };
}

/**
 * Runs COCOeval (evaluate + accumulate + summarize) on all GT images and categories, in this thread.
 * `gt` and `dt` must have been loaded for this iouType (loadGt/loadRes `iouTypes`).
 */
export function cocoEval(gt: EvalGt, dt: CocoDt, iouType: IouType, params: EvalParams = defaultParams()): CocoEvalOutput {
  return finishEval(iouType, accumulateCategories(gt, dt, iouType, params), gt.categoryIds.length);
}
