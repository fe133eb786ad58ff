/**
 * The two orderings COCOeval's loops need, on typed arrays: annotations bucketed by (category, image), and
 * numpy's stable descending argsort of scores (eval/cocoeval.ts).
 */

/** Indices ordered by category, then image, then position; catStart[k] is where category k begins. */
export interface CatImgOrder {
  order: Int32Array;
  catStart: Int32Array;
}

/** Indices 0..n-1 stably ordered by (cat, img), with each category's start: two counting-sort passes. */
export function orderByCatImg(
  cat: Int32Array,
  img: Int32Array,
  nCat: number,
  nImg: number,
): CatImgOrder {
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

/** Scratch space for stable descending argsorts of up to n values. */
export interface SortScratch {
  sorted: Float64Array;
  fill: Int32Array;
}

/**
 * Stable descending argsort of vals[0..n) into out (numpy argsort(-x, kind='mergesort')): insertion sort
 * for short lists, else a native numeric sort of the values and a binary search placing each index after
 * the equal values before it.
 */
export function argsortDesc(vals: Float64Array, n: number, out: Int32Array, s: SortScratch): void {
  if (n < 32) {
    for (let i = 0; i < n; i++) {
      const v = vals[i];
      let j = i - 1;
      while (j >= 0 && vals[out[j]] < v) {
        out[j + 1] = out[j];
        j--;
      }
      out[j + 1] = i;
    }
    return;
  }
  const sorted = s.sorted.subarray(0, n);
  sorted.set(vals.subarray(0, n));
  sorted.sort();
  const fill = s.fill;
  fill.fill(0, 0, n + 1);
  for (let i = 0; i < n; i++) {
    const v = vals[i];
    // First index holding a value > v: there are n - lo larger values, which come first.
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (sorted[mid] <= v) lo = mid + 1;
      else hi = mid;
    }
    out[n - lo + fill[lo]++] = i;
  }
}
