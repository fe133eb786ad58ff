;; Column intersection kernels for postprocess/mask_iou.ts iou (SIMD, 4 columns a step).
;; Regenerate postprocess/mask_iou_wasm.ts after editing: see scripts/wasm/build_wasm.cjs.
;;
;; A mask's columns are int32 arrays in memory, one after another, `stride` bytes apart: S1, E1 (rows of
;; the first piece of each column: S1 .. E1 - 1) and, for inter2, S2, E2 (second piece). An empty slot is
;; [0, 0). Pieces of one mask are disjoint, so the pixels two masks share in a column are the sum, over
;; the piece pairs, of max(0, min(E_a, E_b) - max(S_a, S_b)). Both kernels process n4 groups of 4 columns
;; from byte offsets a and b and return the shared pixel count.
(module
  (memory (export "memory") 1)

  (func (export "inter1") (param $a i32) (param $sa i32) (param $b i32) (param $sb i32) (param $n4 i32) (result i32)
    (local $acc v128) (local $end i32)
    (local.set $end (i32.add (local.get $a) (i32.shl (local.get $n4) (i32.const 4))))
    (block $done
      (loop $step
        (br_if $done (i32.ge_u (local.get $a) (local.get $end)))
        (local.set $acc
          (i32x4.add (local.get $acc)
            (i32x4.max_s (v128.const i32x4 0 0 0 0)
              (i32x4.sub
                (i32x4.min_s (v128.load (i32.add (local.get $a) (local.get $sa)))
                             (v128.load (i32.add (local.get $b) (local.get $sb))))
                (i32x4.max_s (v128.load (local.get $a)) (v128.load (local.get $b)))))))
        (local.set $a (i32.add (local.get $a) (i32.const 16)))
        (local.set $b (i32.add (local.get $b) (i32.const 16)))
        (br $step)))
    (i32.add
      (i32.add (i32x4.extract_lane 0 (local.get $acc)) (i32x4.extract_lane 1 (local.get $acc)))
      (i32.add (i32x4.extract_lane 2 (local.get $acc)) (i32x4.extract_lane 3 (local.get $acc)))))

  (func (export "inter2") (param $a i32) (param $sa i32) (param $b i32) (param $sb i32) (param $n4 i32) (result i32)
    (local $acc v128) (local $end i32)
    (local $as1 v128) (local $ae1 v128) (local $as2 v128) (local $ae2 v128)
    (local $bs1 v128) (local $be1 v128) (local $bs2 v128) (local $be2 v128)
    (local.set $end (i32.add (local.get $a) (i32.shl (local.get $n4) (i32.const 4))))
    (block $done
      (loop $step
        (br_if $done (i32.ge_u (local.get $a) (local.get $end)))
        (local.set $as1 (v128.load (local.get $a)))
        (local.set $ae1 (v128.load (i32.add (local.get $a) (local.get $sa))))
        (local.set $as2 (v128.load (i32.add (local.get $a) (i32.shl (local.get $sa) (i32.const 1)))))
        (local.set $ae2 (v128.load (i32.add (local.get $a) (i32.mul (local.get $sa) (i32.const 3)))))
        (local.set $bs1 (v128.load (local.get $b)))
        (local.set $be1 (v128.load (i32.add (local.get $b) (local.get $sb))))
        (local.set $bs2 (v128.load (i32.add (local.get $b) (i32.shl (local.get $sb) (i32.const 1)))))
        (local.set $be2 (v128.load (i32.add (local.get $b) (i32.mul (local.get $sb) (i32.const 3)))))
        (local.set $acc
          (i32x4.add
            (i32x4.add (local.get $acc)
              (i32x4.add
                (i32x4.max_s (v128.const i32x4 0 0 0 0)
                  (i32x4.sub (i32x4.min_s (local.get $ae1) (local.get $be1)) (i32x4.max_s (local.get $as1) (local.get $bs1))))
                (i32x4.max_s (v128.const i32x4 0 0 0 0)
                  (i32x4.sub (i32x4.min_s (local.get $ae1) (local.get $be2)) (i32x4.max_s (local.get $as1) (local.get $bs2))))))
            (i32x4.add
              (i32x4.max_s (v128.const i32x4 0 0 0 0)
                (i32x4.sub (i32x4.min_s (local.get $ae2) (local.get $be1)) (i32x4.max_s (local.get $as2) (local.get $bs1))))
              (i32x4.max_s (v128.const i32x4 0 0 0 0)
                (i32x4.sub (i32x4.min_s (local.get $ae2) (local.get $be2)) (i32x4.max_s (local.get $as2) (local.get $bs2)))))))
        (local.set $a (i32.add (local.get $a) (i32.const 16)))
        (local.set $b (i32.add (local.get $b) (i32.const 16)))
        (br $step)))
    (i32.add
      (i32.add (i32x4.extract_lane 0 (local.get $acc)) (i32x4.extract_lane 1 (local.get $acc)))
      (i32.add (i32x4.extract_lane 2 (local.get $acc)) (i32x4.extract_lane 3 (local.get $acc))))))
