;; The quick-start program: Fibonacci, recursively, to make the CPU work.
;; mix wasmbeam.run --invoke fib examples/fib.wat 30
(module $fib
  (func $fib (export "fib") (param $n i64) (result i64)
    (if (result i64) (i64.lt_u (local.get $n) (i64.const 2))
      (then (local.get $n))
      (else
        (i64.add
          (call $fib (i64.sub (local.get $n) (i64.const 1)))
          (call $fib (i64.sub (local.get $n) (i64.const 2))))))))
