;; The untrusted plugin: stands for code a user uploaded. Each request runs
;; it in a fresh instance (MyApp.Sandbox) with fuel, a deadline, a memory
;; limit and captured stdout, so besides one honest export it carries the
;; hostile ones the sandbox must contain.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; an iovec at 0 pointing at the text at 16; bytes written go to 8
  (data (i32.const 16) "hello from the sandbox\n")

  ;; The honest export: the sum of the squares 1..n (i64), after a line on stdout.
  (func (export "squares") (param $n i64) (result i64)
    (local $sum i64)
    (call $say)
    (block $done
      (loop $next
        (br_if $done (i64.eqz (local.get $n)))
        (local.set $sum (i64.add (local.get $sum) (i64.mul (local.get $n) (local.get $n))))
        (local.set $n (i64.sub (local.get $n) (i64.const 1)))
        (br $next)))
    (local.get $sum))

  ;; Loops for ever: fuel or the deadline stops it.
  (func (export "loop") (param i64) (result i64)
    (loop br 0)
    (i64.const 0))

  ;; Traps.
  (func (export "crash") (param i64) (result i64)
    unreachable)

  ;; Grows memory one page at a time until refused, and answers the pages
  ;; it ended with: the memory limit, in 64 KiB pages.
  (func (export "hog") (param i64) (result i64)
    (block $refused
      (loop $more
        (br_if $refused (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (br $more)))
    (i64.extend_i32_u (memory.size)))

  ;; Writes its line to stdout for ever: the capture limit traps it.
  (func (export "flood") (param i64) (result i64)
    (loop $again
      (call $say)
      (br $again))
    (i64.const 0))

  (func $say
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 23))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
