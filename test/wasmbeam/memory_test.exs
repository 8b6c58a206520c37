defmodule Wasmbeam.MemoryTest do
  use ExUnit.Case, async: true

  import Bitwise, only: [<<<: 2]
  import Wasmbeam.Test.Wat

  alias Wasmbeam.{Error, Instance, Memory}

  @page 65_536

  @wat ~S[(module
    (memory (export "mem") 2 40)
    (memory (export "other") 1)
    (data (i32.const 16) "guest data")
    (func (export "load8") (param i32) (result i32) local.get 0 i32.load8_u)
    (func (export "load32") (param i32) (result i32) local.get 0 i32.load)
    (func (export "store32") (param i32 i32) local.get 0 local.get 1 i32.store)
    (func (export "sum") (param i32 i32) (result i64) (local $acc i64)
      (block $done
        (loop $next
          (br_if $done (i32.eqz (local.get 1)))
          (local.set $acc (i64.add (local.get $acc) (i64.load8_u (local.get 0))))
          (local.set 0 (i32.add (local.get 0) (i32.const 1)))
          (local.set 1 (i32.sub (local.get 1) (i32.const 1)))
          (br $next)))
      local.get $acc)
    (func (export "fill") (param i32 i32 i32) local.get 0 local.get 1 local.get 2 memory.fill)
    (func (export "size") (result i32) memory.size))]

  setup do
    instance = instance!(@wat)
    {:ok, memory} = Instance.memory(instance, "mem")
    %{instance: instance, memory: memory}
  end

  test "the handle has the export's name", %{memory: memory} do
    assert %Memory{name: "mem"} = memory
    assert is_reference(memory.ref)
  end

  test "size/1 and pages/1", %{memory: memory} do
    assert Memory.size(memory) == {:ok, 2 * @page}
    assert {:ok, 2} = Memory.pages(memory)
  end

  test "grow/2 returns the previous size and the guest sees the new size",
       %{instance: instance, memory: memory} do
    assert {:ok, 2} = Memory.grow(memory, 3)
    assert {:ok, 5} = Memory.pages(memory)
    assert Memory.size(memory) == {:ok, 5 * @page}
    assert {:ok, [5]} = Instance.call(instance, "size", [])
    assert {:ok, 5} = Memory.grow(memory, 0)

    # new pages are zeroed and usable from both sides
    assert {:ok, <<0, 0, 0, 0>>} = Memory.read(memory, 5 * @page - 4, 4)
    assert :ok = Memory.write(memory, 5 * @page - 4, <<1, 0, 0, 0>>)
    assert {:ok, [1]} = Instance.call(instance, "load32", [5 * @page - 4])
  end

  test "grow/2 past the maximum is a :limit error and changes nothing", %{memory: memory} do
    assert {:error, %Error{kind: :limit, message: msg}} = Memory.grow(memory, 39)
    assert msg =~ "39"
    assert {:ok, 2} = Memory.pages(memory)
    assert {:ok, 2} = Memory.grow(memory, 38)
    assert {:ok, 40} = Memory.pages(memory)
    assert {:error, %Error{kind: :limit}} = Memory.grow(memory, 1)
  end

  test "data segments are readable", %{memory: memory} do
    assert {:ok, "guest data"} = Memory.read(memory, 16, 10)
    assert "guest data" = Memory.read!(memory, 16, 10)
  end

  test "read/3 and write/3 round-trip, including empty ranges", %{memory: memory} do
    assert :ok = Memory.write(memory, 1000, "hello")
    assert {:ok, "hello"} = Memory.read(memory, 1000, 5)
    assert {:ok, "hel"} = Memory.read(memory, 1000, 3)
    assert :ok = Memory.write(memory, 1002, "LL")
    assert {:ok, "heLLo"} = Memory.read(memory, 1000, 5)

    assert :ok = Memory.write(memory, 0, "")
    assert {:ok, ""} = Memory.read(memory, 0, 0)
    # an empty range right at the end is in bounds
    assert {:ok, ""} = Memory.read(memory, 2 * @page, 0)
    assert :ok = Memory.write(memory, 2 * @page, "")
  end

  test "the last byte is reachable", %{memory: memory} do
    assert :ok = Memory.write(memory, 2 * @page - 1, <<255>>)
    assert {:ok, <<255>>} = Memory.read(memory, 2 * @page - 1, 1)
  end

  test "bytes written by the host are seen by the guest", %{instance: instance, memory: memory} do
    assert :ok = Memory.write(memory, 256, <<0x78, 0x56, 0x34, 0x12, 200>>)
    assert {:ok, [0x1234_5678]} = Instance.call(instance, "load32", [256])
    assert {:ok, [200]} = Instance.call(instance, "load8", [260])
    assert Instance.call(instance, "sum", [256, 5]) == {:ok, [0x78 + 0x56 + 0x34 + 0x12 + 200]}
  end

  test "bytes written by the guest are seen by the host", %{instance: instance, memory: memory} do
    assert {:ok, []} = Instance.call(instance, "store32", [512, -2])
    assert {:ok, <<0xFE, 0xFF, 0xFF, 0xFF>>} = Memory.read(memory, 512, 4)

    assert {:ok, []} = Instance.call(instance, "fill", [600, 7, 10])
    assert {:ok, <<0, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 0>>} = Memory.read(memory, 599, 12)
  end

  test "large reads and writes (over 64 KiB) work and are seen by the guest",
       %{instance: instance, memory: memory} do
    assert {:ok, 2} = Memory.grow(memory, 16)
    :rand.seed(:exsss, {1, 1, 1})
    big = :rand.bytes(1 <<< 20)

    assert :ok = Memory.write(memory, 100, big)
    assert {:ok, ^big} = Memory.read(memory, 100, byte_size(big))

    expected = for <<byte <- big>>, reduce: 0, do: (acc -> acc + byte)
    assert {:ok, [^expected]} = Instance.call(instance, "sum", [100, byte_size(big)])

    # just above and just at the threshold
    for size <- [64 * 1024, 64 * 1024 + 1] do
      chunk = :binary.copy(<<size::32>>, div(size, 4)) <> :binary.part(big, 0, rem(size, 4))
      assert :ok = Memory.write(memory, 7, chunk)
      assert {:ok, ^chunk} = Memory.read(memory, 7, size)
    end

    # the whole memory at once
    assert {:ok, all} = Memory.read(memory, 0, 18 * @page)
    assert byte_size(all) == 18 * @page
    assert binary_part(all, 100 + 70_000, 1000) == binary_part(big, 70_000, 1000)
  end

  test "out-of-bounds reads and writes are :argument errors", %{memory: memory} do
    size = 2 * @page

    for {offset, length} <- [
          {size, 1},
          {size - 1, 2},
          {0, size + 1},
          {size + 100, 0},
          {1 <<< 40, 4}
        ] do
      assert {:error, %Error{kind: :argument, message: msg}} =
               Memory.read(memory, offset, length),
             inspect({offset, length})

      assert msg =~ "out of bounds"
    end

    for {offset, bytes} <- [{size, "x"}, {size - 3, "abcd"}, {size + 1, ""}] do
      assert {:error, %Error{kind: :argument, message: msg}} = Memory.write(memory, offset, bytes)
      assert msg =~ "out of bounds"
    end

    # a large write out of bounds writes nothing
    big = :binary.copy(<<9>>, 100_000)
    assert {:error, %Error{kind: :argument}} = Memory.write(memory, size - 10, big)
    assert {:ok, <<0, 0, 0, 0, 0, 0, 0, 0, 0, 0>>} = Memory.read(memory, size - 10, 10)
    assert {:error, %Error{kind: :argument}} = Memory.read(memory, size - 10, 100_000)
  end

  test "negative or non-integer offsets and lengths are :argument errors", %{memory: memory} do
    for {offset, length} <- [{-1, 1}, {0, -1}, {1.0, 1}, {0, :all}, {nil, 1}] do
      assert {:error, %Error{kind: :argument}} = Memory.read(memory, offset, length),
             inspect({offset, length})
    end

    for {offset, bytes} <- [{-1, "a"}, {0, ~c"abc"}, {0, 5}, {:start, "a"}, {0, nil}] do
      assert {:error, %Error{kind: :argument}} = Memory.write(memory, offset, bytes),
             inspect({offset, bytes})
    end
  end

  test "offsets too large for 64 bits are :argument errors, not raises", %{memory: memory} do
    assert {:error, %Error{kind: :argument}} = Memory.read(memory, 1 <<< 64, 1)
    assert {:error, %Error{kind: :argument}} = Memory.write(memory, 1 <<< 64, "x")
    assert {:error, %Error{kind: :argument}} = Memory.grow(memory, 1 <<< 64)
  end

  test "read!/3 raises Wasmbeam.Error out of bounds", %{memory: memory} do
    assert_raise Error, ~r/\(argument\) out of bounds/, fn ->
      Memory.read!(memory, 2 * @page, 1)
    end
  end

  test "two memories of one instance are separate", %{instance: instance, memory: memory} do
    {:ok, other} = Instance.memory(instance, "other")
    assert {:ok, 1} = Memory.pages(other)
    assert :ok = Memory.write(other, 16, "OTHER")
    assert {:ok, "guest data"} = Memory.read(memory, 16, 10)
    assert {:ok, "OTHER"} = Memory.read(other, 16, 5)
  end

  test "the handle works from another process", %{memory: memory} do
    assert {:ok, "guest"} = Task.async(fn -> Memory.read(memory, 16, 5) end) |> Task.await()
  end

  test "inspect shows the name and pages", %{memory: memory} do
    assert inspect(memory) == "#Wasmbeam.Memory<mem: 2 page(s)>"
    Memory.grow(memory, 1)
    assert inspect(memory) == "#Wasmbeam.Memory<mem: 3 page(s)>"
  end
end
