defmodule Wasmbeam.Test.ComponentWat do
  @moduledoc false
  # Small components written in the component text format, for tests
  # that need no toolchain: a calculator with a host import and a loop,
  # and an echo of strings, bytes and a record (the core module returns
  # the lowered arguments as its result, so what goes in comes out).

  @doc false
  def calc do
    ~S'''
    (component
      (import "log" (func $log (param "msg" u32) (result u32)))
      (core func $log_lowered (canon lower (func $log)))
      (core module $m
        (import "host" "log" (func $log (param i32) (result i32)))
        (func (export "add") (param i32 i32) (result i32)
          local.get 0 local.get 1 i32.add)
        (func (export "run") (param i32) (result i32)
          local.get 0 call $log i32.const 1 i32.add)
        (func (export "calls") (param i32) (result i32)
          (local $sum i32)
          (block $done
            (loop $l
              local.get 0 i32.eqz br_if $done
              local.get $sum local.get 0 call $log i32.add local.set $sum
              local.get 0 i32.const 1 i32.sub local.set 0
              br $l))
          local.get $sum)
        (func (export "spin") (loop $l br $l))
        (func (export "boom") unreachable))
      (core instance $i (instantiate $m (with "host" (instance (export "log" (func $log_lowered))))))
      (func (export "add") (param "a" u32) (param "b" u32) (result u32)
        (canon lift (core func $i "add")))
      (func (export "run") (param "x" u32) (result u32)
        (canon lift (core func $i "run")))
      (func (export "calls") (param "n" u32) (result u32)
        (canon lift (core func $i "calls")))
      (func (export "spin") (canon lift (core func $i "spin")))
      (func (export "boom") (canon lift (core func $i "boom"))))
    '''
  end

  @doc false
  def echo do
    ~S'''
    (component
      (core module $m
        (memory (export "mem") 40)
        (global $next (mut i32) (i32.const 1024))
        (func (export "realloc") (param i32 i32 i32 i32) (result i32)
          (local $p i32)
          global.get $next local.set $p
          global.get $next local.get 3 i32.add global.set $next
          local.get $p)
        (func (export "echo2") (param i32 i32) (result i32)
          i32.const 0 local.get 0 i32.store
          i32.const 4 local.get 1 i32.store
          i32.const 0)
        (func (export "echo3") (param i32 i32 i32) (result i32)
          i32.const 0 local.get 0 i32.store
          i32.const 4 local.get 1 i32.store
          i32.const 8 local.get 2 i32.store
          i32.const 0)
        (func (export "reset") i32.const 1024 global.set $next))
      (core instance $i (instantiate $m))
      (type $point (record (field "x-coord" s32) (field "label" string)))
      (export $point' "point" (type $point))
      (func (export "echo-string") (param "s" string) (result string)
        (canon lift (core func $i "echo2") (memory $i "mem") (realloc (func $i "realloc"))))
      (func (export "echo-bytes") (param "b" (list u8)) (result (list u8))
        (canon lift (core func $i "echo2") (memory $i "mem") (realloc (func $i "realloc"))))
      (func (export "echo-point") (param "p" $point') (result $point')
        (canon lift (core func $i "echo3") (memory $i "mem") (realloc (func $i "realloc"))))
      (func (export "reset") (canon lift (core func $i "reset"))))
    '''
  end
end
