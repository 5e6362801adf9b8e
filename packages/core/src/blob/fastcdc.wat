;; The FastCDC 2020 cut-point scan (see fastcdc.ts for the algorithm and its
;; provenance), in WebAssembly because it has what JavaScript lacks: 64-bit
;; integer arithmetic without allocation. Assembled into fastcdc-wasm.ts by
;; scripts/build-fastcdc-wasm.mjs; a test checks the two agree.
;;
;; Memory layout (the memory is imported, so JavaScript owns its size):
;;   [0, 2048)   the GEAR table, 256 little-endian u64, written by JavaScript
;;   [2048, …)   the bytes to cut, also written by JavaScript
(module
  (import "env" "memory" (memory 1))

  ;; The crate's gear hash at the last cut (its `cut` returns it beside the length).
  (global $hash (export "hash") (mut i64) (i64.const 0))

  ;; One cut point in [offset, end): the chunk length, as the crate's `cut_gear`.
  ;; min/avg/max and the masks come validated from resolveChunking.
  (func (export "cut")
    (param $offset i32) (param $end i32)
    (param $min i32) (param $avg i32) (param $max i32)
    (param $maskS i64) (param $maskL i64)
    (result i32)
    (local $remaining i32) (local $center i32)
    (local $i i32) (local $limit i32) (local $h i64)
    (global.set $hash (i64.const 0))
    (local.set $remaining (i32.sub (local.get $end) (local.get $offset)))
    (if (i32.le_u (local.get $remaining) (local.get $min))
      (then (return (local.get $remaining))))
    (local.set $center (local.get $avg))
    (if (i32.gt_u (local.get $remaining) (local.get $max))
      (then (local.set $remaining (local.get $max)))
      (else (if (i32.lt_u (local.get $remaining) (local.get $center))
        (then (local.set $center (local.get $remaining))))))
    ;; The crate hashes pairs of bytes from 2*floor(min/2) to 2*floor(center/2)
    ;; under maskS, then on to 2*floor(remaining/2) under maskL. Both ends are
    ;; even, so the loops take pairs too (one bounds check per pair).
    (local.set $i (i32.add (local.get $offset) (i32.and (local.get $min) (i32.const -2))))
    (local.set $limit (i32.add (local.get $offset) (i32.and (local.get $center) (i32.const -2))))
    (block $small_done
      (loop $small
        (br_if $small_done (i32.ge_u (local.get $i) (local.get $limit)))
        (local.set $h (i64.add (i64.shl (local.get $h) (i64.const 1))
          (i64.load (i32.shl (i32.load8_u offset=2048 (local.get $i)) (i32.const 3)))))
        (if (i64.eqz (i64.and (local.get $h) (local.get $maskS)))
          (then (return (call $found (local.get $i) (local.get $offset) (local.get $h)))))
        (local.set $h (i64.add (i64.shl (local.get $h) (i64.const 1))
          (i64.load (i32.shl (i32.load8_u offset=2049 (local.get $i)) (i32.const 3)))))
        (if (i64.eqz (i64.and (local.get $h) (local.get $maskS)))
          (then (return (call $found (i32.add (local.get $i) (i32.const 1)) (local.get $offset) (local.get $h)))))
        (local.set $i (i32.add (local.get $i) (i32.const 2)))
        (br $small)))
    (local.set $limit (i32.add (local.get $offset) (i32.and (local.get $remaining) (i32.const -2))))
    (block $large_done
      (loop $large
        (br_if $large_done (i32.ge_u (local.get $i) (local.get $limit)))
        (local.set $h (i64.add (i64.shl (local.get $h) (i64.const 1))
          (i64.load (i32.shl (i32.load8_u offset=2048 (local.get $i)) (i32.const 3)))))
        (if (i64.eqz (i64.and (local.get $h) (local.get $maskL)))
          (then (return (call $found (local.get $i) (local.get $offset) (local.get $h)))))
        (local.set $h (i64.add (i64.shl (local.get $h) (i64.const 1))
          (i64.load (i32.shl (i32.load8_u offset=2049 (local.get $i)) (i32.const 3)))))
        (if (i64.eqz (i64.and (local.get $h) (local.get $maskL)))
          (then (return (call $found (i32.add (local.get $i) (i32.const 1)) (local.get $offset) (local.get $h)))))
        (local.set $i (i32.add (local.get $i) (i32.const 2)))
        (br $large)))
    ;; No cut point: the chunk is as long as allowed; the hash stands after the
    ;; last pair (an odd position, so in its plain form).
    (global.set $hash (local.get $h))
    (local.get $remaining))

  ;; A cut at byte $i: the crate checks the first byte of each pair through
  ;; left-shifted tables, so at an even position it reports the hash shifted left.
  (func $found (param $i i32) (param $offset i32) (param $h i64) (result i32)
    (local $length i32)
    (local.set $length (i32.sub (local.get $i) (local.get $offset)))
    (global.set $hash
      (select (i64.shl (local.get $h) (i64.const 1)) (local.get $h)
        (i32.eqz (i32.and (local.get $length) (i32.const 1)))))
    (local.get $length)))
