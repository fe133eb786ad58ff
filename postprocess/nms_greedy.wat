;; Greedy NMS scan over the size-level grids built by gridGreedy in postprocess/nms.ts (see the comment
;; there for why only these pairs are visited). Assembled into postprocess/nms_greedy_wasm.ts by
;; scripts/wasm/build_nms_wasm.cjs.
;;
;; The IoU is computed in f32 exactly as the C++ kernels do (each op rounded to single precision; WebAssembly
;; f32 arithmetic is IEEE single) and compared, promoted to f64, with the threshold as given (a double for
;; torchvision, a float32 value for mmcv). Only finite boxes with positive extent are in the grids, so the
;; NaN cases of the kernels' std::max / std::min never arise here.
;;
;; Arrays (byte addresses) are read from a pointer table at address 0:
;;   0 x1 f32   4 y1 f32   8 x2 f32  12 y2 f32  16 area f32   (boxes in visit order)
;;  20 cx f64  24 cy f64  28 bw f64  32 bh f64                (centre and extent, double as in the JS)
;;  36 lvl i32 (level or -1)  40 supp u8  44 keep i32 (out: kept positions)
;;  48 items (32-byte records, see below)  52 start i32  56 len i32   (cells: items[start[c] .. start[c]+len[c]))
;;  60 cnt i32  64 base i32  68 gx i32  72 gy i32  76 icsx f64  80 icsy f64   (per level)
;;  84 cell i32 (cell of each box, scratch for cells)
(module
  (memory (export "memory") 1)

  (func $log2floor (param $v f64) (result i32)
    (i32.sub (i32.wrap_i64 (i64.shr_u (i64.reinterpret_f64 (local.get $v)) (i64.const 52))) (i32.const 1023)))

  (func $cellidx (param $v f64) (param $hi i32) (result i32)
    (local $c i32)
    (local.set $c (i32.trunc_sat_f64_s (f64.floor (local.get $v))))
    (if (i32.lt_s (local.get $c) (i32.const 0)) (then (local.set $c (i32.const 0))))
    (if (i32.gt_s (local.get $c) (local.get $hi)) (then (local.set $c (local.get $hi))))
    (local.get $c))

  ;; Counting sort of the valid boxes (lvl >= 0) into their level's grid cell, then the 32-byte item records
  ;; (j, x1 y1 x2 y2 area as f32, w h rounded to f32) in visit order: each cell lists ascending positions.
  (func (export "cells") (param $n i32) (param $nc i32) (param $minX f64) (param $minY f64)
    (local $plvl i32) (local $pcell i32) (local $pstart i32) (local $plen i32) (local $pitems i32)
    (local $pcx i32) (local $pcy i32) (local $pgx i32) (local $pgy i32) (local $pbase i32) (local $picsx i32) (local $picsy i32)
    (local $k i32) (local $q i32) (local $c i32) (local $gx i32) (local $gy i32) (local $ix i32) (local $iy i32) (local $p i32) (local $a i32)
    (local.set $plvl (i32.load (i32.const 36)))
    (local.set $pitems (i32.load (i32.const 48)))
    (local.set $pstart (i32.load (i32.const 52)))
    (local.set $plen (i32.load (i32.const 56)))
    (local.set $pbase (i32.load (i32.const 64)))
    (local.set $pgx (i32.load (i32.const 68)))
    (local.set $pgy (i32.load (i32.const 72)))
    (local.set $picsx (i32.load (i32.const 76)))
    (local.set $picsy (i32.load (i32.const 80)))
    (local.set $pcell (i32.load (i32.const 84)))
    (local.set $pcx (i32.load (i32.const 20)))
    (local.set $pcy (i32.load (i32.const 24)))
    (memory.fill (local.get $pstart) (i32.const 0) (i32.shl (i32.add (local.get $nc) (i32.const 1)) (i32.const 2)))
    (memory.fill (local.get $plen) (i32.const 0) (i32.shl (local.get $nc) (i32.const 2)))
    (local.set $k (i32.const 0))
    (block $d1 (loop $l1
      (br_if $d1 (i32.ge_s (local.get $k) (local.get $n)))
      (local.set $q (i32.load (i32.add (local.get $plvl) (i32.shl (local.get $k) (i32.const 2)))))
      (if (i32.ge_s (local.get $q) (i32.const 0)) (then
        (local.set $gx (i32.load (i32.add (local.get $pgx) (i32.shl (local.get $q) (i32.const 2)))))
        (local.set $gy (i32.load (i32.add (local.get $pgy) (i32.shl (local.get $q) (i32.const 2)))))
        (local.set $ix (i32.trunc_sat_f64_s (f64.floor (f64.mul
          (f64.sub (f64.load (i32.add (local.get $pcx) (i32.shl (local.get $k) (i32.const 3)))) (local.get $minX))
          (f64.load (i32.add (local.get $picsx) (i32.shl (local.get $q) (i32.const 3))))))))
        (local.set $iy (i32.trunc_sat_f64_s (f64.floor (f64.mul
          (f64.sub (f64.load (i32.add (local.get $pcy) (i32.shl (local.get $k) (i32.const 3)))) (local.get $minY))
          (f64.load (i32.add (local.get $picsy) (i32.shl (local.get $q) (i32.const 3))))))))
        (if (i32.ge_s (local.get $ix) (local.get $gx)) (then (local.set $ix (i32.sub (local.get $gx) (i32.const 1)))))
        (if (i32.ge_s (local.get $iy) (local.get $gy)) (then (local.set $iy (i32.sub (local.get $gy) (i32.const 1)))))
        (local.set $c (i32.add (i32.load (i32.add (local.get $pbase) (i32.shl (local.get $q) (i32.const 2))))
          (i32.add (i32.mul (local.get $iy) (local.get $gx)) (local.get $ix))))
        (i32.store (i32.add (local.get $pcell) (i32.shl (local.get $k) (i32.const 2))) (local.get $c))
        (local.set $a (i32.add (local.get $pstart) (i32.shl (i32.add (local.get $c) (i32.const 1)) (i32.const 2))))
        (i32.store (local.get $a) (i32.add (i32.load (local.get $a)) (i32.const 1)))))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br $l1)))
    (local.set $c (i32.const 0))
    (block $d2 (loop $l2
      (br_if $d2 (i32.ge_s (local.get $c) (local.get $nc)))
      (local.set $a (i32.add (local.get $pstart) (i32.shl (local.get $c) (i32.const 2))))
      (i32.store offset=4 (local.get $a) (i32.add (i32.load offset=4 (local.get $a)) (i32.load (local.get $a))))
      (local.set $c (i32.add (local.get $c) (i32.const 1)))
      (br $l2)))
    (local.set $k (i32.const 0))
    (block $d3 (loop $l3
      (br_if $d3 (i32.ge_s (local.get $k) (local.get $n)))
      (if (i32.ge_s (i32.load (i32.add (local.get $plvl) (i32.shl (local.get $k) (i32.const 2)))) (i32.const 0)) (then
        (local.set $c (i32.load (i32.add (local.get $pcell) (i32.shl (local.get $k) (i32.const 2)))))
        (local.set $a (i32.add (local.get $plen) (i32.shl (local.get $c) (i32.const 2))))
        (local.set $p (i32.add (local.get $pitems) (i32.shl
          (i32.add (i32.load (i32.add (local.get $pstart) (i32.shl (local.get $c) (i32.const 2)))) (i32.load (local.get $a)))
          (i32.const 5))))
        (i32.store (local.get $a) (i32.add (i32.load (local.get $a)) (i32.const 1)))
        (i32.store (local.get $p) (local.get $k))
        (f32.store offset=4 (local.get $p) (f32.load (i32.add (i32.load (i32.const 0)) (i32.shl (local.get $k) (i32.const 2)))))
        (f32.store offset=8 (local.get $p) (f32.load (i32.add (i32.load (i32.const 4)) (i32.shl (local.get $k) (i32.const 2)))))
        (f32.store offset=12 (local.get $p) (f32.load (i32.add (i32.load (i32.const 8)) (i32.shl (local.get $k) (i32.const 2)))))
        (f32.store offset=16 (local.get $p) (f32.load (i32.add (i32.load (i32.const 12)) (i32.shl (local.get $k) (i32.const 2)))))
        (f32.store offset=20 (local.get $p) (f32.load (i32.add (i32.load (i32.const 16)) (i32.shl (local.get $k) (i32.const 2)))))
        (f32.store offset=24 (local.get $p) (f32.demote_f64 (f64.load (i32.add (i32.load (i32.const 28)) (i32.shl (local.get $k) (i32.const 3))))))
        (f32.store offset=28 (local.get $p) (f32.demote_f64 (f64.load (i32.add (i32.load (i32.const 32)) (i32.shl (local.get $k) (i32.const 3))))))))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br $l3)))
  )

  ;; Returns the number of kept positions written to keep.
  (func (export "greedy")
    (param $n i32) (param $thr f64) (param $off f32) (param $minX f64) (param $minY f64) (param $tl f64)
    (param $reach f64) (param $nlw i32) (param $nlh i32) (param $lw0 i32) (param $lh0 i32) (param $shift i32)
    (result i32)
    (local $px1 i32) (local $py1 i32) (local $px2 i32) (local $py2 i32) (local $parea i32)
    (local $pcx i32) (local $pcy i32) (local $pbw i32) (local $pbh i32)
    (local $plvl i32) (local $psupp i32) (local $pkeep i32) (local $pitems i32) (local $pstart i32) (local $plen i32)
    (local $pcnt i32) (local $pbase i32) (local $pgx i32) (local $pgy i32) (local $picsx i32) (local $picsy i32)
    (local $i i32) (local $nk i32) (local $j i32) (local $q i32) (local $qw i32) (local $qe i32)
    (local $wa i32) (local $wb i32) (local $ha i32) (local $hb i32)
    (local $gx i32) (local $ca i32) (local $cb i32) (local $ra i32) (local $rb i32) (local $r i32)
    (local $c i32) (local $ce i32) (local $s i32) (local $e i32) (local $pt i32) (local $pe i32) (local $pw i32) (local $bq i32)
    (local $wi f64) (local $hi f64) (local $cxi f64) (local $cyi f64) (local $rx f64) (local $ry f64)
    (local $xa f64) (local $xb f64) (local $ya f64) (local $yb f64) (local $sx f64) (local $sy f64)
    (local $wlo f64) (local $whi f64) (local $hlo f64) (local $hhi f64) (local $wj f64) (local $hj f64)
    (local $x1i f32) (local $y1i f32) (local $x2i f32) (local $y2i f32) (local $ai f32)
    (local $sup i32) (local $vi v128) (local $vj v128) (local $vd v128) (local $voff v128) (local $a f32) (local $b f32) (local $ww f32) (local $hh f32) (local $inter f32)
    (local.set $px1 (i32.load (i32.const 0)))
    (local.set $py1 (i32.load (i32.const 4)))
    (local.set $px2 (i32.load (i32.const 8)))
    (local.set $py2 (i32.load (i32.const 12)))
    (local.set $parea (i32.load (i32.const 16)))
    (local.set $pcx (i32.load (i32.const 20)))
    (local.set $pcy (i32.load (i32.const 24)))
    (local.set $pbw (i32.load (i32.const 28)))
    (local.set $pbh (i32.load (i32.const 32)))
    (local.set $plvl (i32.load (i32.const 36)))
    (local.set $psupp (i32.load (i32.const 40)))
    (local.set $pkeep (i32.load (i32.const 44)))
    (local.set $pitems (i32.load (i32.const 48)))
    (local.set $pstart (i32.load (i32.const 52)))
    (local.set $plen (i32.load (i32.const 56)))
    (local.set $pcnt (i32.load (i32.const 60)))
    (local.set $pbase (i32.load (i32.const 64)))
    (local.set $pgx (i32.load (i32.const 68)))
    (local.set $pgy (i32.load (i32.const 72)))
    (local.set $picsx (i32.load (i32.const 76)))
    (local.set $picsy (i32.load (i32.const 80)))
    (local.set $voff (f32x4.splat (local.get $off)))
    (local.set $i (i32.const 0))
    (block $done
      (loop $visit
        (br_if $done (i32.ge_s (local.get $i) (local.get $n)))
        (block $next
          (br_if $next (i32.load8_u (i32.add (local.get $psupp) (local.get $i))))
          (i32.store (i32.add (local.get $pkeep) (i32.shl (local.get $nk) (i32.const 2))) (local.get $i))
          (local.set $nk (i32.add (local.get $nk) (i32.const 1)))
          (br_if $next (i32.lt_s (i32.load (i32.add (local.get $plvl) (i32.shl (local.get $i) (i32.const 2)))) (i32.const 0)))
          (local.set $wi (f64.load (i32.add (local.get $pbw) (i32.shl (local.get $i) (i32.const 3)))))
          (local.set $hi (f64.load (i32.add (local.get $pbh) (i32.shl (local.get $i) (i32.const 3)))))
          (local.set $cxi (f64.load (i32.add (local.get $pcx) (i32.shl (local.get $i) (i32.const 3)))))
          (local.set $cyi (f64.load (i32.add (local.get $pcy) (i32.shl (local.get $i) (i32.const 3)))))
          (local.set $rx (f64.add (f64.mul (local.get $reach) (local.get $wi))
            (f64.mul (f64.const 1e-6) (f64.add (f64.abs (local.get $cxi)) (f64.const 1)))))
          (local.set $ry (f64.add (f64.mul (local.get $reach) (local.get $hi))
            (f64.mul (f64.const 1e-6) (f64.add (f64.abs (local.get $cyi)) (f64.const 1)))))
          (local.set $xa (f64.sub (f64.sub (local.get $cxi) (local.get $rx)) (local.get $minX)))
          (local.set $xb (f64.sub (f64.add (local.get $cxi) (local.get $rx)) (local.get $minX)))
          (local.set $ya (f64.sub (f64.sub (local.get $cyi) (local.get $ry)) (local.get $minY)))
          (local.set $yb (f64.sub (f64.add (local.get $cyi) (local.get $ry)) (local.get $minY)))
          (local.set $wlo (f64.mul (local.get $tl) (local.get $wi)))
          (local.set $whi (f64.div (local.get $wi) (local.get $tl)))
          (local.set $hlo (f64.mul (local.get $tl) (local.get $hi)))
          (local.set $hhi (f64.div (local.get $hi) (local.get $tl)))
          ;; size classes (octaves of w and h, >> shift) that can hold a partner
          (local.set $wa (i32.sub (i32.shr_s (call $log2floor (f64.mul (local.get $wlo) (f64.const 0.999))) (local.get $shift)) (local.get $lw0)))
          (local.set $wb (i32.sub (i32.shr_s (call $log2floor (f64.mul (local.get $whi) (f64.const 1.001))) (local.get $shift)) (local.get $lw0)))
          (local.set $ha (i32.sub (i32.shr_s (call $log2floor (f64.mul (local.get $hlo) (f64.const 0.999))) (local.get $shift)) (local.get $lh0)))
          (local.set $hb (i32.sub (i32.shr_s (call $log2floor (f64.mul (local.get $hhi) (f64.const 1.001))) (local.get $shift)) (local.get $lh0)))
          (if (i32.lt_s (local.get $wa) (i32.const 0)) (then (local.set $wa (i32.const 0))))
          (if (i32.lt_s (local.get $ha) (i32.const 0)) (then (local.set $ha (i32.const 0))))
          (if (i32.ge_s (local.get $wb) (local.get $nlw)) (then (local.set $wb (i32.sub (local.get $nlw) (i32.const 1)))))
          (if (i32.ge_s (local.get $hb) (local.get $nlh)) (then (local.set $hb (i32.sub (local.get $nlh) (i32.const 1)))))
          (local.set $x1i (f32.load (i32.add (local.get $px1) (i32.shl (local.get $i) (i32.const 2)))))
          (local.set $y1i (f32.load (i32.add (local.get $py1) (i32.shl (local.get $i) (i32.const 2)))))
          (local.set $x2i (f32.load (i32.add (local.get $px2) (i32.shl (local.get $i) (i32.const 2)))))
          (local.set $y2i (f32.load (i32.add (local.get $py2) (i32.shl (local.get $i) (i32.const 2)))))
          (local.set $ai (f32.load (i32.add (local.get $parea) (i32.shl (local.get $i) (i32.const 2)))))
          (local.set $vi (f32x4.replace_lane 3 (f32x4.replace_lane 2 (f32x4.replace_lane 1 (f32x4.splat (local.get $x1i))
            (local.get $y1i)) (local.get $x2i)) (local.get $y2i)))
          (local.set $qw (local.get $wa))
          (block $qwdone
            (loop $qwloop
              (br_if $qwdone (i32.gt_s (local.get $qw) (local.get $wb)))
              (local.set $q (i32.add (i32.mul (local.get $qw) (local.get $nlh)) (local.get $ha)))
              (local.set $qe (i32.add (i32.mul (local.get $qw) (local.get $nlh)) (local.get $hb)))
              (block $qdone
                (loop $qloop
                  (br_if $qdone (i32.gt_s (local.get $q) (local.get $qe)))
                  (block $qnext
                    (br_if $qnext (i32.eqz (i32.load (i32.add (local.get $pcnt) (i32.shl (local.get $q) (i32.const 2))))))
                    (local.set $gx (i32.load (i32.add (local.get $pgx) (i32.shl (local.get $q) (i32.const 2)))))
                    (local.set $bq (i32.load (i32.add (local.get $pbase) (i32.shl (local.get $q) (i32.const 2)))))
                    (local.set $sx (f64.load (i32.add (local.get $picsx) (i32.shl (local.get $q) (i32.const 3)))))
                    (local.set $sy (f64.load (i32.add (local.get $picsy) (i32.shl (local.get $q) (i32.const 3)))))
                    (local.set $ca (call $cellidx (f64.mul (local.get $xa) (local.get $sx)) (i32.sub (local.get $gx) (i32.const 1))))
                    (local.set $cb (call $cellidx (f64.mul (local.get $xb) (local.get $sx)) (i32.sub (local.get $gx) (i32.const 1))))
                    (local.set $ra (call $cellidx (f64.mul (local.get $ya) (local.get $sy))
                      (i32.sub (i32.load (i32.add (local.get $pgy) (i32.shl (local.get $q) (i32.const 2)))) (i32.const 1))))
                    (local.set $rb (call $cellidx (f64.mul (local.get $yb) (local.get $sy))
                      (i32.sub (i32.load (i32.add (local.get $pgy) (i32.shl (local.get $q) (i32.const 2)))) (i32.const 1))))
                    (local.set $r (local.get $ra))
                    (block $rdone
                      (loop $rloop
                        (br_if $rdone (i32.gt_s (local.get $r) (local.get $rb)))
                        (local.set $c (i32.add (local.get $bq) (i32.add (i32.mul (local.get $r) (local.get $gx)) (local.get $ca))))
                        (local.set $ce (i32.add (local.get $bq) (i32.add (i32.mul (local.get $r) (local.get $gx)) (local.get $cb))))
                        (block $cdone
                          (loop $cloop
                            (br_if $cdone (i32.gt_s (local.get $c) (local.get $ce)))
                            (local.set $s (i32.load (i32.add (local.get $pstart) (i32.shl (local.get $c) (i32.const 2)))))
                            (local.set $e (i32.add (local.get $s) (i32.load (i32.add (local.get $plen) (i32.shl (local.get $c) (i32.const 2))))))
                            ;; items are 32-byte records: j i32, x1 y1 x2 y2 area w h f32 (a cell streams through memory)
                            (local.set $pt (i32.add (local.get $pitems) (i32.shl (local.get $s) (i32.const 5))))
                            (local.set $pe (i32.add (local.get $pitems) (i32.shl (local.get $e) (i32.const 5))))
                            (local.set $pw (local.get $pt))
                            (block $tdone
                              (loop $tloop
                                (br_if $tdone (i32.ge_u (local.get $pt) (local.get $pe)))
                                (local.set $j (i32.load (local.get $pt)))
                                ;; Branch-free (the outcomes are data-dependent, mispredictions would dominate):
                                ;; $sup = size-compatible && ww > 0 && hh > 0 && IoU > thr, computed for every
                                ;; record; a size-incompatible or disjoint pair gives sup = 0 whatever the IoU
                                ;; expression yields. xx1 = std::max(x1i, x1j) = x1i < x1j ? x1j : x1i,
                                ;; xx2 = std::min(x2i, x2j) = x2j < x2i ? x2j : x2i.
                                (local.set $wj (f64.promote_f32 (f32.load offset=24 (local.get $pt))))
                                (local.set $hj (f64.promote_f32 (f32.load offset=28 (local.get $pt))))
                                ;; (xx1, yy1, xx2, yy2) in one go: pmax(a, b) = a < b ? b : a is std::max and
                                ;; pmin(a, b) = b < a ? b : a is std::min (argument order matters), then
                                ;; (ww, hh) = (xx2 - xx1 + off, yy2 - yy1 + off) in lanes 2 and 3
                                (local.set $vj (v128.load offset=4 align=4 (local.get $pt)))
                                (local.set $vd (f32x4.add (f32x4.sub
                                  (f32x4.pmin (local.get $vi) (local.get $vj))
                                  (i8x16.shuffle 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 (f32x4.pmax (local.get $vi) (local.get $vj)) (local.get $vi)))
                                  (local.get $voff)))
                                (local.set $ww (f32x4.extract_lane 2 (local.get $vd)))
                                (local.set $hh (f32x4.extract_lane 3 (local.get $vd)))
                                (local.set $inter (f32.mul (local.get $ww) (local.get $hh)))
                                (local.set $sup (i32.and
                                  (i32.and
                                    (i32.and (f64.gt (local.get $wj) (local.get $wlo)) (f64.lt (local.get $wj) (local.get $whi)))
                                    (i32.and (f64.gt (local.get $hj) (local.get $hlo)) (f64.lt (local.get $hj) (local.get $hhi))))
                                  (i32.and
                                    (i32.and (f32.gt (local.get $ww) (f32.const 0)) (f32.gt (local.get $hh) (f32.const 0)))
                                    (f64.gt
                                      (f64.promote_f32 (f32.div (local.get $inter)
                                        (f32.sub (f32.add (local.get $ai) (f32.load offset=20 (local.get $pt))) (local.get $inter))))
                                      (local.get $thr)))))
                                ;; positions <= i are done for every later kept box: they leave the cell. A box
                                ;; sits in one cell only and leaves it when suppressed, so no suppressed box is here.
                                (local.set $sup (i32.and (local.get $sup) (i32.gt_s (local.get $j) (local.get $i))))
                                (i32.store8 (i32.add (local.get $psupp) (local.get $j)) (local.get $sup))
                                ;; still live (j > i, not suppressed): the record stays (written always, kept by the step)
                                (v128.store (local.get $pw) (v128.load (local.get $pt)))
                                (v128.store offset=16 (local.get $pw) (v128.load offset=16 (local.get $pt)))
                                (local.set $pw (i32.add (local.get $pw) (i32.shl
                                  (i32.and (i32.gt_s (local.get $j) (local.get $i)) (i32.eqz (local.get $sup))) (i32.const 5))))
                                (local.set $pt (i32.add (local.get $pt) (i32.const 32)))
                                (br $tloop)))
                            (i32.store (i32.add (local.get $plen) (i32.shl (local.get $c) (i32.const 2)))
                              (i32.shr_u (i32.sub (local.get $pw) (i32.add (local.get $pitems) (i32.shl (local.get $s) (i32.const 5)))) (i32.const 5)))
                            (local.set $c (i32.add (local.get $c) (i32.const 1)))
                            (br $cloop)))
                        (local.set $r (i32.add (local.get $r) (i32.const 1)))
                        (br $rloop))))
                  (local.set $q (i32.add (local.get $q) (i32.const 1)))
                  (br $qloop)))
              (local.set $qw (i32.add (local.get $qw) (i32.const 1)))
              (br $qwloop))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $visit)))
    (local.get $nk))
)
