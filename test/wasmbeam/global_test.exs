defmodule Wasmbeam.GlobalTest do
  use ExUnit.Case, async: true

  import Bitwise, only: [<<<: 2]
  import Wasmbeam.Test.Wat

  alias Wasmbeam.{Error, Func, Global, Instance}

  @wat ~S[(module
    (global $i32 (export "i32") (mut i32) (i32.const -5))
    (global $i64 (export "i64") (mut i64) (i64.const 1))
    (global $f32 (export "f32") (mut f32) (f32.const 0.5))
    (global $f64 (export "f64") (mut f64) (f64.const -2.5))
    (global $v128 (export "v128") (mut v128) (v128.const i64x2 1 2))
    (global $ext (export "ext") (mut externref) (ref.null extern))
    (global $fn (export "fn") (mut funcref) (ref.null func))
    (global (export "const_i32") i32 (i32.const 99))
    (global (export "const_f64") f64 (f64.const 1.25))
    (func $seven (export "seven") (result i32) i32.const 7)
    (elem declare func $seven)
    (func (export "get_i32") (result i32) global.get $i32)
    (func (export "get_i64") (result i64) global.get $i64)
    (func (export "get_ext") (result externref) global.get $ext)
    (func (export "inc_i32") global.get $i32 i32.const 1 i32.add global.set $i32)
    (func (export "set_fn") ref.func $seven global.set $fn)
    (func (export "call_fn") (result i32) (local funcref)
      global.get $fn ref.is_null
      if (result i32) i32.const -1 else i32.const 1 end))]

  setup do
    instance = instance!(@wat)

    globals =
      Map.new(~w(i32 i64 f32 f64 v128 ext fn const_i32 const_f64), fn name ->
        {:ok, global} = Instance.global(instance, name)
        {name, global}
      end)

    %{instance: instance, g: globals}
  end

  test "handles carry the name, value type and mutability", %{g: g} do
    assert %Global{name: "i32", type: :i32, mutable: true} = g["i32"]
    assert %Global{type: :v128, mutable: true} = g["v128"]
    assert %Global{type: :externref} = g["ext"]
    assert %Global{type: :funcref} = g["fn"]
    assert %Global{name: "const_i32", type: :i32, mutable: false} = g["const_i32"]
  end

  test "get/1 reads initial values of every type", %{g: g} do
    assert {:ok, -5} = Global.get(g["i32"])
    assert {:ok, 1} = Global.get(g["i64"])
    assert {:ok, 0.5} = Global.get(g["f32"])
    assert {:ok, -2.5} = Global.get(g["f64"])
    assert Global.get(g["v128"]) == {:ok, 1 + (2 <<< 64)}
    assert {:ok, nil} = Global.get(g["ext"])
    assert {:ok, nil} = Global.get(g["fn"])
    assert {:ok, 99} = Global.get(g["const_i32"])
    assert {:ok, 1.25} = Global.get(g["const_f64"])
  end

  test "set/2 changes the value seen by the guest, and the guest's changes are seen",
       %{instance: instance, g: g} do
    assert :ok = Global.set(g["i32"], 41)
    assert {:ok, [41]} = Instance.call(instance, "get_i32", [])
    assert {:ok, []} = Instance.call(instance, "inc_i32", [])
    assert {:ok, 42} = Global.get(g["i32"])

    assert :ok = Global.set(g["i32"], 0xFFFF_FFFF)
    assert {:ok, -1} = Global.get(g["i32"])

    assert :ok = Global.set(g["i64"], (1 <<< 64) - 1)
    assert {:ok, [-1]} = Instance.call(instance, "get_i64", [])
  end

  test "floats keep specials and NaN payloads", %{g: g} do
    assert :ok = Global.set(g["f32"], :neg_infinity)
    assert {:ok, :neg_infinity} = Global.get(g["f32"])
    assert :ok = Global.set(g["f32"], {:nan, 0x7FC0_0123})
    assert {:ok, {:nan, 0x7FC0_0123}} = Global.get(g["f32"])

    neg = negative_zero()
    assert :ok = Global.set(g["f64"], neg)
    assert {:ok, back} = Global.get(g["f64"])
    assert f64_bits(back) == f64_bits(neg)

    assert :ok = Global.set(g["f64"], 3)
    assert {:ok, 3.0} = Global.get(g["f64"])
  end

  test "v128 globals take integers, negatives as two's complement", %{g: g} do
    assert :ok = Global.set(g["v128"], -1)
    assert Global.get(g["v128"]) == {:ok, (1 <<< 128) - 1}
  end

  test "externref globals hold any term", %{instance: instance, g: g} do
    term = %{pid: self(), ref: make_ref(), list: [1, "two", :three]}
    assert :ok = Global.set(g["ext"], term)
    assert {:ok, ^term} = Global.get(g["ext"])
    assert {:ok, [^term]} = Instance.call(instance, "get_ext", [])

    assert :ok = Global.set(g["ext"], nil)
    assert {:ok, nil} = Global.get(g["ext"])
  end

  test "funcref globals hold functions of the same store", %{instance: instance, g: g} do
    assert {:ok, [-1]} = Instance.call(instance, "call_fn", [])
    assert {:ok, []} = Instance.call(instance, "set_fn", [])
    assert {:ok, %Func{} = f} = Global.get(g["fn"])
    assert {:ok, [7]} = Func.call(f, [])
    assert {:ok, [1]} = Instance.call(instance, "call_fn", [])

    assert :ok = Global.set(g["fn"], nil)
    assert {:ok, nil} = Global.get(g["fn"])

    {:ok, seven} = Instance.func(instance, "seven")
    assert :ok = Global.set(g["fn"], seven)
    assert {:ok, %Func{results: [:i32]}} = Global.get(g["fn"])
  end

  test "a funcref of another store is a :type error", %{g: g} do
    other = instance!(~S[(module (func (export "f")))])
    {:ok, f} = Instance.func(other, "f")
    assert {:error, %Error{kind: :type, message: msg}} = Global.set(g["fn"], f)
    assert msg =~ "another store"
    assert {:ok, nil} = Global.get(g["fn"])
  end

  test "setting an immutable global is an :argument error", %{g: g} do
    assert {:error, %Error{kind: :argument, message: msg}} = Global.set(g["const_i32"], 1)
    assert msg =~ "immutable"
    assert {:ok, 99} = Global.get(g["const_i32"])

    # even with a value of the wrong type, immutability is reported
    assert {:error, %Error{kind: :argument}} = Global.set(g["const_f64"], "x")
  end

  test "values of the wrong type are :type errors and change nothing", %{g: g} do
    for {name, bad} <- [
          {"i32", 1.5},
          {"i32", 1 <<< 32},
          {"i32", "1"},
          {"i64", 1 <<< 64},
          {"i64", nil},
          {"f32", "1.0"},
          {"f32", {:nan, 1}},
          {"f64", :nope},
          {"v128", 1 <<< 128},
          {"fn", 5},
          {"fn", %{}}
        ] do
      {:ok, before} = Global.get(g[name])

      assert {:error, %Error{kind: :type}} = Global.set(g[name], bad),
             "#{name} <- #{inspect(bad)}"

      assert {:ok, ^before} = Global.get(g[name])
    end
  end

  test "inspect shows name, mutability and type", %{g: g} do
    assert inspect(g["i64"]) == "#Wasmbeam.Global<i64: mut i64>"
    assert inspect(g["const_f64"]) == "#Wasmbeam.Global<const_f64: f64>"
    assert inspect(g["ext"]) == "#Wasmbeam.Global<ext: mut externref>"
  end
end
