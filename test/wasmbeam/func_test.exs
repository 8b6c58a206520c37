defmodule Wasmbeam.FuncTest do
  use ExUnit.Case, async: true

  import Wasmbeam.Test.Wat

  alias Wasmbeam.{Engine, Error, Func, Instance, Module, Store}

  @wat ~S[(module
    (global $calls (mut i32) (i32.const 0))
    (func $add (export "add") (param i32 i32) (result i32)
      global.get $calls i32.const 1 i32.add global.set $calls
      local.get 0 local.get 1 i32.add)
    (func (export "calls") (result i32) global.get $calls)
    (func $boom (export "boom") (param i32) unreachable)
    (func (export "spin") (loop br 0))
    (func (export "swap") (param i64 f64) (result f64 i64) local.get 1 local.get 0))]

  setup do
    instance = instance!(@wat)
    {:ok, add} = Instance.func(instance, "add")
    %{instance: instance, add: add}
  end

  test "a handle carries its name, types and store", %{instance: instance, add: add} do
    assert %Func{name: "add", params: [:i32, :i32], results: [:i32]} = add
    assert is_reference(add.ref)
    assert add.store == instance.store.ref
  end

  test "call/3 runs the function and shares state with the instance",
       %{instance: instance, add: add} do
    assert {:ok, [42]} = Func.call(add, [40, 2])
    assert {:ok, [-1]} = Func.call(add, [0xFFFF_FFFF, 0])
    assert {:ok, [2]} = Instance.call(instance, "calls", [])
    assert {:ok, [0]} = Instance.call(instance, "add", [0, 0])
    assert {:ok, [3]} = Instance.call(instance, "calls", [])
  end

  test "multi-value results", %{instance: instance} do
    {:ok, swap} = Instance.func(instance, "swap")
    assert %Func{params: [:i64, :f64], results: [:f64, :i64]} = swap
    assert {:ok, [2.5, 7]} = Func.call(swap, [7, 2.5])
  end

  test "bad arguments give :arity, :type and :argument errors", %{add: add} do
    assert {:error, %Error{kind: :arity}} = Func.call(add, [1])
    assert {:error, %Error{kind: :type}} = Func.call(add, [1, "2"])
    assert {:error, %Error{kind: :argument}} = Func.call(add, :not_a_list)
    assert {:error, %Error{kind: :argument}} = Func.call(add, [1, 2], timeout: -5)
    assert {:error, %Error{kind: :argument}} = Func.call(add, [1, 2], :nope)
  end

  test "traps carry the trap code and backtrace; the handle still works", %{instance: i} do
    {:ok, boom} = Instance.func(i, "boom")

    assert {:error, %Error{kind: :trap, trap: :unreachable, backtrace: [%{func_name: "boom"}]}} =
             Func.call(boom, [1])

    {:ok, add} = Instance.func(i, "add")
    assert {:ok, [3]} = Func.call(add, [1, 2])
  end

  test "timeout: applies to Func.call", %{instance: instance, add: add} do
    {:ok, spin} = Instance.func(instance, "spin")
    assert {:error, %Error{kind: :timeout}} = Func.call(spin, [], timeout: 20)
    assert {:ok, [5]} = Func.call(add, [2, 3], timeout: 1_000)
  end

  test "fuel: applies to Func.call" do
    engine = Engine.new!(consume_fuel: true)
    instance = engine |> Module.compile!(@wat) |> Instance.new!()
    {:ok, spin} = Instance.func(instance, "spin")
    assert {:error, %Error{kind: :out_of_fuel}} = Func.call(spin, [], fuel: 500)
    assert {:ok, 0} = Store.fuel(instance.store)
    {:ok, add} = Instance.func(instance, "add")
    assert {:ok, [5]} = Func.call(add, [2, 3], fuel: 500)
  end

  test "call!/3 returns results or raises Wasmbeam.Error", %{instance: instance, add: add} do
    assert [9] = Func.call!(add, [4, 5])
    {:ok, boom} = Instance.func(instance, "boom")

    error = assert_raise Error, fn -> Func.call!(boom, [0]) end
    assert %Error{kind: :trap, trap: :unreachable} = error
    assert Exception.message(error) =~ "(trap)"

    assert_raise Error, ~r/\(arity\)/, fn -> Func.call!(add, []) end
  end

  test "a handle keeps working after the instance struct is gone" do
    add =
      (fn ->
         instance = instance!(@wat)
         {:ok, add} = Instance.func(instance, "add")
         add
       end).()

    :erlang.garbage_collect()
    assert {:ok, [7]} = Func.call(add, [3, 4])
  end

  test "a handle can be called from another process", %{add: add} do
    assert {:ok, [11]} = Task.async(fn -> Func.call(add, [5, 6]) end) |> Task.await()
  end

  test "inspect shows the name and type", %{instance: instance, add: add} do
    assert inspect(add) == "#Wasmbeam.Func<add: func (i32, i32) -> i32>"
    {:ok, swap} = Instance.func(instance, "swap")
    assert inspect(swap) == "#Wasmbeam.Func<swap: func (i64, f64) -> (f64, i64)>"

    anonymous =
      instance!(~S[(module (func $f (result i32) i32.const 1) (elem declare func $f)
        (func (export "get") (result funcref) ref.func $f))])
      |> Instance.call!("get", [])
      |> hd()

    assert inspect(anonymous) == "#Wasmbeam.Func<(anonymous): func () -> i32>"
  end
end
