defmodule Wasmbeam.DefaultLimitsTest do
  # Stores bound memories and tables by default, so that no single
  # instruction (memory.fill/copy, table.grow/fill run without a slice check
  # inside) can hold a scheduler for seconds: without limits, table.grow by
  # 10^9 took 7.7 s and a 4 GiB memory.fill 4.4 s.
  use ExUnit.Case, async: true

  alias Wasmbeam.{Error, Instance, Module, Store}

  @wat ~S[(module
    (memory (export "memory") 1)
    (table $t 1 funcref)
    (func (export "grow_memory") (param i32) (result i32)
      local.get 0 memory.grow)
    (func (export "grow_table") (param i32) (result i32)
      ref.null func local.get 0 table.grow $t)
    (func (export "fill_table") (param i32)
      i32.const 0 ref.null func local.get 0 table.fill $t))]

  @page 65_536

  setup do
    {:ok, module: Module.compile!(@wat)}
  end

  test "the defaults are 256 MiB per memory and 1,000,000 table elements" do
    assert Store.default_limits() == %{memory_size: 256 * 1024 * 1024, table_elements: 1_000_000}
  end

  test "a memory grows to 256 MiB by default, not past it", %{module: module} do
    instance = Instance.new!(module)
    pages = div(256 * 1024 * 1024, @page)
    assert {:ok, [-1]} = Instance.call(instance, "grow_memory", [pages])
    assert {:ok, [1]} = Instance.call(instance, "grow_memory", [pages - 1])
    assert {:ok, [-1]} = Instance.call(instance, "grow_memory", [1])
  end

  test "a table grows to 1,000,000 elements by default; a huge grow or fill fails at once",
       %{module: module} do
    instance = Instance.new!(module)
    assert {:ok, [-1]} = Instance.call(instance, "grow_table", [1_000_000_000])
    assert {:error, %Error{kind: :trap}} = Instance.call(instance, "fill_table", [100_000_000])
    assert {:ok, [1]} = Instance.call(instance, "grow_table", [999_999])
    assert {:ok, [-1]} = Instance.call(instance, "grow_table", [1])
    assert {:ok, []} = Instance.call(instance, "fill_table", [1_000_000])
  end

  test "limits are overridable, and :infinity lifts them", %{module: module} do
    instance = Instance.new!(module, %{}, memory_size: :infinity, table_elements: :infinity)
    assert {:ok, [1]} = Instance.call(instance, "grow_memory", [div(300 * 1024 * 1024, @page)])
    assert {:ok, [1]} = Instance.call(instance, "grow_table", [2_000_000])

    small = Instance.new!(module, %{}, memory_size: 2 * @page, table_elements: 10)
    assert {:ok, [-1]} = Instance.call(small, "grow_memory", [2])
    assert {:ok, [-1]} = Instance.call(small, "grow_table", [10])
  end

  test ":infinity is refused for fuel, and other values are :argument errors" do
    assert {:error, %Error{kind: :argument}} =
             Store.new(Wasmbeam.Engine.default(), fuel: :infinity)

    assert {:error, %Error{kind: :argument}} =
             Store.new(Wasmbeam.Engine.default(), memory_size: -1)

    assert {:error, %Error{kind: :argument}} = Store.new(Wasmbeam.Engine.default(), :nope)
  end
end
