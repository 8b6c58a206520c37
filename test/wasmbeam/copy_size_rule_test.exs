defmodule Wasmbeam.CopySizeRuleTest do
  # Regression (native review 2026-12, E2 and E7; issue item 8): a copy of
  # guest memory larger than 64 KiB runs on a dirty scheduler, on every
  # path, and the native code enforces it. Decision: the normal-scheduler
  # NIFs refuse large copies with an `:argument` error; the dirty `_large`
  # variants take them (`Memory.read/3` and `Memory.write/3` pick one),
  # and `Caller.read/3` and `Caller.write/3` keep working for large copies
  # through a dirty variant. `Caller.read/3` used to copy any length on
  # the normal scheduler (256 MiB: 632 ms).
  use ExUnit.Case, async: true

  import Wasmbeam.Test.Wat, only: [instance!: 2]

  alias Wasmbeam.{Caller, Driver, Error, Instance, Memory, Native}

  @small 64 * 1024
  @mib 1024 * 1024

  # 32 pages: 2 MiB of memory.
  @wat ~S[(module
    (import "env" "h" (func $h))
    (memory (export "memory") 32)
    (func (export "run") call $h))]

  defp memory_of(instance) do
    {:ok, memory} = Instance.memory(instance, "memory")
    memory
  end

  test "memory_read and memory_write refuse more than 64 KiB; the _large variants take it" do
    memory =
      @wat |> instance!(%{"env" => %{"h" => {:fn, [], [], fn _ -> :ok end}}}) |> memory_of()

    big = :binary.copy(<<0xAB>>, @mib)

    # Up to 64 KiB on the normal scheduler.
    assert {:ok, <<0::size(@small)-unit(8)>>} = Native.memory_read(memory.ref, 0, @small)
    assert :ok = Native.memory_write(memory.ref, 0, :binary.copy(<<1>>, @small))

    # More is refused there...
    assert {:error, %Error{kind: :argument}} = Native.memory_read(memory.ref, 0, @small + 1)
    assert {:error, %Error{kind: :argument}} = Native.memory_read(memory.ref, 0, @mib)

    assert {:error, %Error{kind: :argument}} =
             Native.memory_write(memory.ref, 0, :binary.copy(<<2>>, @small + 1))

    assert {:error, %Error{kind: :argument}} = Native.memory_write(memory.ref, @mib, big)

    # ...and nothing was written by the refused writes.
    assert {:ok, <<1, 1, 1, 1>>} = Native.memory_read(memory.ref, @small - 4, 4)
    assert {:ok, <<0, 0, 0, 0>>} = Native.memory_read(memory.ref, @small, 4)
    assert {:ok, <<0, 0, 0, 0>>} = Native.memory_read(memory.ref, @mib, 4)

    # The dirty variants, and the public functions, take large copies.
    assert :ok = Native.memory_write_large(memory.ref, @mib, big)
    assert {:ok, ^big} = Native.memory_read_large(memory.ref, @mib, @mib)
    assert :ok = Memory.write(memory, 0, big)
    assert {:ok, ^big} = Memory.read(memory, 0, @mib)
  end

  test "a caller refuses copies over 64 KiB on the normal scheduler; Caller.read/write take them" do
    test = self()
    big = :binary.copy(<<0xCD>>, @mib)

    handler = fn caller ->
      store = caller.store

      raw = fn op -> store |> Native.caller_op(caller.id, op) |> Driver.finish(store) end

      send(test, {:raw_read, raw.({:memory_read, "memory", 0, @mib})})

      send(
        test,
        {:raw_write, raw.({:memory_write, "memory", 0, :binary.copy(<<7>>, @small + 1)})}
      )

      send(test, {:after_raw_write, Caller.read(caller, 0, 4)})
      send(test, {:small_read, raw.({:memory_read, "memory", 0, @small})})

      send(test, {:write, Caller.write(caller, 0, big)})
      send(test, {:read, Caller.read(caller, 0, @mib)})
      :ok
    end

    instance = instance!(@wat, %{"env" => %{"h" => {:fn, [], [], handler}}})
    assert {:ok, []} = Instance.call(instance, "run", [])

    assert_received {:raw_read, raw_read}

    assert match?({:error, %Error{kind: :argument}}, raw_read),
           "caller_op copied #{describe(raw_read)} on the normal scheduler"

    assert_received {:raw_write, raw_write}

    assert match?({:error, %Error{kind: :argument}}, raw_write),
           "caller_op wrote 64 KiB + 1 on the normal scheduler: #{describe(raw_write)}"

    assert_received {:after_raw_write, {:ok, <<0, 0, 0, 0>>}}
    assert_received {:small_read, {:ok, <<0::size(@small)-unit(8)>>}}

    assert_received {:write, :ok}
    assert_received {:read, {:ok, ^big}}
    assert {:ok, ^big} = instance |> memory_of() |> Memory.read(0, @mib)
  end

  defp describe({:ok, bytes}) when is_binary(bytes), do: "#{byte_size(bytes)} bytes"
  defp describe(other), do: inspect(other, limit: 5, printable_limit: 20)
end
