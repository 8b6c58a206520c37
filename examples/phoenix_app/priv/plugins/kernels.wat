;; The trusted plugin: compute kernels the app ships and trusts, served from
;; a pool of warm instances (MyApp.Plugins).
(module
  ;; The n-th Fibonacci number (wraps past 2^63: it is a kernel, not a bignum).
  (func (export "fib") (param $n i64) (result i64)
    (local $a i64) (local $b i64) (local $t i64)
    (local.set $b (i64.const 1))
    (block $done
      (loop $next
        (br_if $done (i64.eqz (local.get $n)))
        (local.set $t (i64.add (local.get $a) (local.get $b)))
        (local.set $a (local.get $b))
        (local.set $b (local.get $t))
        (local.set $n (i64.sub (local.get $n) (i64.const 1)))
        (br $next)))
    (local.get $a))
  ;; Integer division: traps on a zero divisor.
  (func (export "div") (param i64 i64) (result i64)
    (i64.div_s (local.get 0) (local.get 1)))
  ;; A runaway: never returns; only a deadline (or its caller's death) stops it.
  (func (export "spin") (loop br 0)))
