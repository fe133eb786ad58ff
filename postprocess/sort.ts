/**
 * Tie-exact emulation of `torch.sort(x, descending=True)` on CPU (torch 1.13, stable=False).
 *
 * Torch's CPU sort runs libstdc++ `std::sort` (introsort: median-of-three quicksort, heapsort fallback at
 * depth 2*floor(log2 n), final insertion sort with threshold 16) over (value, index) pairs with the
 * comparator `(isnan(a) && !isnan(b)) || a > b`. Equal scores therefore come out in an order that is neither
 * stable nor reversed, and every downstream index (NMS keep order, top-k proposals) depends on it. We replay
 * the exact same sequence of comparisons and swaps so that ties resolve identically.
 */

const THRESHOLD = 16;

/** `comp(a, b)` of torch's KeyValueCompDesc: NaN sorts first, then larger values. */
function before(a: number, b: number): boolean {
  return (a !== a && b === b) || a > b;
}

/**
 * Indices that sort `values[0..n)` descending exactly as torch.sort(descending=True) does on CPU.
 * Also returns the sorted keys (as float64 holding the input values).
 */
export function argsortDescending(values: ArrayLike<number>, n: number = values.length): Int32Array {
  // Without ties the sorted order is unique, so any sort gives torch's: try the O(n) radix sort and keep its
  // order when it is strictly decreasing under torch's comparator (no ties, nothing lost by float32 keys).
  if (n > 32) {
    const fast = argsortDescendingStable(values, n);
    let strict = true;
    for (let k = 1; k < n && strict; k++) strict = before(values[fast[k - 1]], values[fast[k]]);
    if (strict) return fast;
  }
  const keys = new Float64Array(n);
  const idx = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    keys[i] = values[i];
    idx[i] = i;
  }
  sortPairsDescending(keys, idx, 0, n);
  return idx;
}

/** In-place libstdc++ std::sort of the pairs (keys[i], idx[i]) for i in [first, last). */
export function sortPairsDescending(keys: Float64Array, idx: Int32Array, first: number, last: number): void {
  const n = last - first;
  if (n <= 1) return;
  introsortLoop(keys, idx, first, last, 2 * Math.floor(Math.log2(n)));
  finalInsertionSort(keys, idx, first, last);
}

function swap(keys: Float64Array, idx: Int32Array, a: number, b: number): void {
  const k = keys[a];
  keys[a] = keys[b];
  keys[b] = k;
  const t = idx[a];
  idx[a] = idx[b];
  idx[b] = t;
}

function introsortLoop(keys: Float64Array, idx: Int32Array, first: number, last: number, depth: number): void {
  while (last - first > THRESHOLD) {
    if (depth === 0) {
      heapSort(keys, idx, first, last);
      return;
    }
    depth--;
    const cut = partitionPivot(keys, idx, first, last);
    introsortLoop(keys, idx, cut, last, depth);
    last = cut;
  }
}

function partitionPivot(keys: Float64Array, idx: Int32Array, first: number, last: number): number {
  const mid = first + ((last - first) >> 1);
  moveMedianToFirst(keys, idx, first, first + 1, mid, last - 1);
  // __unguarded_partition(first + 1, last, pivot = first)
  let lo = first + 1;
  let hi = last;
  const pivot = keys[first];
  for (;;) {
    while (before(keys[lo], pivot)) lo++;
    hi--;
    while (before(pivot, keys[hi])) hi--;
    if (!(lo < hi)) return lo;
    swap(keys, idx, lo, hi);
    lo++;
  }
}

function moveMedianToFirst(keys: Float64Array, idx: Int32Array, result: number, a: number, b: number, c: number): void {
  const ka = keys[a];
  const kb = keys[b];
  const kc = keys[c];
  if (before(ka, kb)) {
    if (before(kb, kc)) swap(keys, idx, result, b);
    else if (before(ka, kc)) swap(keys, idx, result, c);
    else swap(keys, idx, result, a);
  } else if (before(ka, kc)) swap(keys, idx, result, a);
  else if (before(kb, kc)) swap(keys, idx, result, c);
  else swap(keys, idx, result, b);
}

function unguardedLinearInsert(keys: Float64Array, idx: Int32Array, last: number): void {
  const vk = keys[last];
  const vi = idx[last];
  let next = last - 1;
  while (before(vk, keys[next])) {
    keys[last] = keys[next];
    idx[last] = idx[next];
    last = next;
    next--;
  }
  keys[last] = vk;
  idx[last] = vi;
}

function insertionSort(keys: Float64Array, idx: Int32Array, first: number, last: number): void {
  if (first === last) return;
  for (let i = first + 1; i < last; i++) {
    const vk = keys[i];
    if (before(vk, keys[first])) {
      const vi = idx[i];
      for (let j = i; j > first; j--) {
        keys[j] = keys[j - 1];
        idx[j] = idx[j - 1];
      }
      keys[first] = vk;
      idx[first] = vi;
    } else {
      unguardedLinearInsert(keys, idx, i);
    }
  }
}

function finalInsertionSort(keys: Float64Array, idx: Int32Array, first: number, last: number): void {
  if (last - first > THRESHOLD) {
    insertionSort(keys, idx, first, first + THRESHOLD);
    for (let i = first + THRESHOLD; i < last; i++) unguardedLinearInsert(keys, idx, i);
  } else {
    insertionSort(keys, idx, first, last);
  }
}

// ---- heapsort fallback: std::__partial_sort(first, last, last) = make_heap + sort_heap ----

function pushHeap(keys: Float64Array, idx: Int32Array, base: number, hole: number, top: number, vk: number, vi: number): void {
  let parent = (hole - 1) >> 1;
  while (hole > top && before(keys[base + parent], vk)) {
    keys[base + hole] = keys[base + parent];
    idx[base + hole] = idx[base + parent];
    hole = parent;
    parent = (hole - 1) >> 1;
  }
  keys[base + hole] = vk;
  idx[base + hole] = vi;
}

function adjustHeap(keys: Float64Array, idx: Int32Array, base: number, hole: number, len: number, vk: number, vi: number): void {
  const top = hole;
  let child = hole;
  while (child < ((len - 1) >> 1)) {
    child = 2 * (child + 1);
    if (before(keys[base + child], keys[base + child - 1])) child--;
    keys[base + hole] = keys[base + child];
    idx[base + hole] = idx[base + child];
    hole = child;
  }
  if ((len & 1) === 0 && child === (len - 2) >> 1) {
    child = 2 * (child + 1);
    keys[base + hole] = keys[base + child - 1];
    idx[base + hole] = idx[base + child - 1];
    hole = child - 1;
  }
  pushHeap(keys, idx, base, hole, top, vk, vi);
}

function heapSort(keys: Float64Array, idx: Int32Array, first: number, last: number): void {
  const len = last - first;
  if (len >= 2) {
    for (let parent = (len - 2) >> 1; ; parent--) {
      adjustHeap(keys, idx, first, parent, len, keys[first + parent], idx[first + parent]);
      if (parent === 0) break;
    }
  }
  for (let end = last; end - first > 1; ) {
    end--;
    const vk = keys[end];
    const vi = idx[end];
    keys[end] = keys[first];
    idx[end] = idx[first];
    adjustHeap(keys, idx, first, 0, end - first, vk, vi);
  }
}

/**
 * Indices that sort `values` descending with ties kept in index order, as
 * `torch.sort(x, stable=True, descending=True)` (NaN first, -0 == +0). This is the order torchvision 0.14's
 * CPU NMS kernel visits boxes in. LSD radix sort on the float32 bit patterns: O(n), stable by construction.
 */
export function argsortDescendingStable(values: ArrayLike<number>, n: number = values.length): Int32Array {
  // Keys: float32 bit patterns made ascending-orderable, then reversed; 0 is kept for NaN (sorts first).
  let bits: Uint32Array;
  if (values instanceof Float32Array) bits = new Uint32Array(values.buffer, values.byteOffset, n);
  else {
    const f = new Float32Array(n);
    for (let i = 0; i < n; i++) f[i] = values[i];
    bits = new Uint32Array(f.buffer);
  }
  let keys = new Uint32Array(n);
  // One histogram per 11-bit digit, all filled in the key pass.
  const count = new Int32Array(3 * 2048);
  for (let i = 0; i < n; i++) {
    let b = bits[i];
    let key: number;
    if ((b & 0x7fffffff) > 0x7f800000) key = 0; // NaN
    else {
      if (b === 0x80000000) b = 0; // -0 == +0
      const ordered = b & 0x80000000 ? ~b >>> 0 : (b | 0x80000000) >>> 0;
      key = (0xffffffff - ordered) >>> 0;
    }
    keys[i] = key;
    count[key & 0x7ff]++;
    count[2048 + ((key >>> 11) & 0x7ff)]++;
    count[4096 + (key >>> 22)]++;
  }
  let idx = new Int32Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  let tmp = new Int32Array(n);
  let tmpKeys = new Uint32Array(n);
  for (let pass = 0; pass < 3; pass++) {
    const shift = pass * 11, base = pass * 2048;
    // A digit all keys share does not reorder anything: skip its pass.
    let trivial = false;
    for (let d = 0; d < 2048; d++) {
      const c = count[base + d];
      if (c === n) trivial = true;
      if (c !== 0) break;
    }
    if (trivial) continue;
    // exclusive prefix sums -> start offsets
    let sum = 0;
    for (let d = 0; d < 2048; d++) {
      const c = count[base + d];
      count[base + d] = sum;
      sum += c;
    }
    for (let i = 0; i < n; i++) {
      const key = keys[i];
      const p = count[base + ((key >>> shift) & 0x7ff)]++;
      tmp[p] = idx[i];
      tmpKeys[p] = key;
    }
    const s = idx;
    idx = tmp;
    tmp = s;
    const sk = keys;
    keys = tmpKeys;
    tmpKeys = sk;
  }
  return idx;
}
