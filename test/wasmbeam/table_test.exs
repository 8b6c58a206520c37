defmodule Wasmbeam.TableTest do
  use ExUnit.Case, async: true

  import Bitwise, only: [<<<: 2]
  import Wasmbeam.Test.Wat

  alias Wasmbeam.{Error, Func, Instance, Table}

  @wat ~S[(module
    (table $fns (export "fns") 3 10 funcref)
    (table $ext (export "ext") 2 externref)
    (func $five (export "five") (result i32) i32.const 5)
    (func $add (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
    (elem (table $fns) (i32.const 1) func $five $add)
    (func (export "set_ext") (param i32 externref) local.get 0 local.get 1 table.set $ext)
    (func (export "get_ext") (param i32) (result externref) local.get 0 table.get $ext)
    (func (export "grow_fns") (param i32) (result i32) ref.null func local.get 0 table.grow $fns)
    (func (export "clear") (param i32) local.get 0 ref.null func table.set $fns))]

  setup do
    instance = instance!(@wat)
    {:ok, fns} = Instance.table(instance, "fns")
    {:ok, ext} = Instance.table(instance, "ext")
    %{instance: instance, fns: fns, ext: ext}
  end

  test "handles carry the name and element type", %{fns: fns, ext: ext} do
    assert %Table{name: "fns", element: :funcref} = fns
    assert %Table{name: "ext", element: :externref} = ext
  end

  test "size/1 follows table.grow", %{instance: instance, fns: fns, ext: ext} do
    assert {:ok, 3} = Table.size(fns)
    assert {:ok, 2} = Table.size(ext)
    assert {:ok, [3]} = Instance.call(instance, "grow_fns", [4])
    assert {:ok, 7} = Table.size(fns)
    # past the maximum of 10
    assert {:ok, [-1]} = Instance.call(instance, "grow_fns", [4])
    assert {:ok, 7} = Table.size(fns)
  end

  test "get/2 returns nil for empty slots and callable Funcs", %{fns: fns} do
    assert {:ok, nil} = Table.get(fns, 0)

    assert {:ok, %Func{name: nil, params: [], results: [:i32]} = five} = Table.get(fns, 1)
    assert {:ok, [5]} = Func.call(five, [])

    assert {:ok, %Func{params: [:i32, :i32], results: [:i32]} = add} = Table.get(fns, 2)
    assert {:ok, [9]} = Func.call(add, [4, 5])
    assert {:error, %Error{kind: :arity}} = Func.call(add, [4])
  end

  test "a Func taken from a table keeps working after the slot is cleared",
       %{instance: instance, fns: fns} do
    {:ok, five} = Table.get(fns, 1)
    assert {:ok, []} = Instance.call(instance, "clear", [1])
    assert {:ok, nil} = Table.get(fns, 1)
    assert {:ok, [5]} = Func.call(five, [])
  end

  test "externref tables hold terms put there by the guest", %{instance: instance, ext: ext} do
    assert {:ok, nil} = Table.get(ext, 0)
    term = {:session, self(), %{"id" => 7}}
    assert {:ok, []} = Instance.call(instance, "set_ext", [1, term])
    assert {:ok, ^term} = Table.get(ext, 1)
    assert {:ok, [^term]} = Instance.call(instance, "get_ext", [1])
    assert {:ok, nil} = Table.get(ext, 0)
  end

  test "an out-of-bounds index is an :argument error", %{fns: fns, ext: ext} do
    assert {:error, %Error{kind: :argument, message: msg}} = Table.get(fns, 3)
    assert msg =~ "out of bounds"
    assert {:error, %Error{kind: :argument}} = Table.get(ext, 2)
    assert {:error, %Error{kind: :argument}} = Table.get(ext, 1 <<< 40)
  end

  test "a negative or non-integer index is an :argument error", %{fns: fns} do
    for bad <- [-1, 1.0, "1", nil, :first] do
      assert {:error, %Error{kind: :argument, message: msg}} = Table.get(fns, bad), inspect(bad)
      assert msg =~ "index must be a non-negative integer"
    end
  end

  test "an index too large for 64 bits is an :argument error, not a raise", %{fns: fns} do
    assert {:error, %Error{kind: :argument}} = Table.get(fns, 1 <<< 64)
  end

  test "a table access from a guest out of bounds traps", %{instance: instance} do
    assert {:error, %Error{kind: :trap, trap: :table_out_of_bounds}} =
             Instance.call(instance, "get_ext", [5])
  end

  test "inspect shows name and element type", %{fns: fns, ext: ext} do
    assert inspect(fns) == "#Wasmbeam.Table<fns: funcref>"
    assert inspect(ext) == "#Wasmbeam.Table<ext: externref>"
  end
end
