defmodule Wasmbeam.StreamLimitTest do
  # Regression (issue #15): `stdout: {:stream, pid}` had no bound: 1 GiB
  # streamed to a process that never read took the VM from 83 MB to
  # 1.1 GB. A stream now carries at most its limit (64 MiB by default,
  # `:infinity` for a reader that keeps up); writing more traps the guest
  # with a message that says so.
  use ExUnit.Case, async: true

  alias Wasmbeam.{Error, Module, Wasi}

  # Writes the 64 KiB at address 0 to stdout `count` times.
  @wat ~S[(module
    (import "wasi_snapshot_preview1" "fd_write"
      (func $fd_write (param i32 i32 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (memory (export "memory") 2)
    (global $count (mut i32) (i32.const 0))
    (func (export "_start")
      ;; iovec at 65536: {buf = 0, len = 65536}
      (i32.store (i32.const 65536) (i32.const 0))
      (i32.store (i32.const 65540) (i32.const 65536))
      (block $done
        (loop $again
          (br_if $done (i32.ge_u (global.get $count) (i32.const COUNT)))
          (drop (call $fd_write (i32.const 1) (i32.const 65536) (i32.const 1) (i32.const 65544)))
          (global.set $count (i32.add (global.get $count) (i32.const 1)))
          (br $again)))))]

  defp program(count),
    do: Module.compile!(String.replace(@wat, "COUNT", Integer.to_string(count)))

  # A process that reads and drops everything streamed to it, and reports
  # how many bytes it got when asked.
  defp drain do
    spawn_link(fn -> drain_loop(0) end)
  end

  defp drain_loop(bytes) do
    receive do
      {:wasmbeam_output, _tag, :stdout, data} -> drain_loop(bytes + byte_size(data))
      {:total, from} -> send(from, {:total, bytes})
    end
  end

  defp total(drain) do
    send(drain, {:total, self()})
    assert_receive {:total, bytes}
    bytes
  end

  test "writing past the stream's limit traps the guest with a clear message" do
    drain = drain()

    assert {:error, %Error{kind: :trap, message: message}} =
             Wasi.run(program(64), stdout: {:stream, drain, :out, 1024 * 1024})

    assert message =~ "streamed more than 1048576 bytes to stdout"
    assert total(drain) <= 1024 * 1024
  end

  test "the default limit is 64 MiB" do
    drain = drain()

    assert {:error, %Error{kind: :trap, message: message}} =
             Wasi.run(program(1_040), stdout: {:stream, drain})

    assert message =~ "streamed more than #{64 * 1024 * 1024} bytes"
    assert total(drain) <= 64 * 1024 * 1024
  end

  test "within the limit, or with :infinity, everything arrives" do
    drain = drain()

    assert {:ok, %{exit_code: 0}} =
             Wasi.run(program(16), stdout: {:stream, drain, :out, :infinity})

    assert total(drain) == 16 * 65_536
  end

  test "a bad limit is an :argument error" do
    for limit <- [-1, :nope, 1.5] do
      assert {:error, %Error{kind: :argument}} =
               Wasi.run(program(1), stdout: {:stream, self(), :out, limit})
    end
  end
end
