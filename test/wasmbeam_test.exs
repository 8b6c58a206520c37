defmodule WasmbeamTest do
  use ExUnit.Case, async: true

  doctest Wasmbeam
  doctest Wasmbeam.Engine
  doctest Wasmbeam.Engine.Config
  doctest Wasmbeam.Module
  doctest Wasmbeam.Store
  doctest Wasmbeam.Instance
  doctest Wasmbeam.Imports
  doctest Wasmbeam.Func
  doctest Wasmbeam.Memory
  doctest Wasmbeam.Global
  doctest Wasmbeam.Table
  doctest Wasmbeam.Types
  doctest Wasmbeam.Error
  doctest Wasmbeam.Caller
  doctest Wasmbeam.Wasi
  doctest Wasmbeam.Wasi.Pipe
  doctest Wasmbeam.Wasi.Options
  doctest Wasmbeam.LinkedModule

  describe "load/3" do
    test "compiles and instantiates WAT in one step" do
      assert {:ok, instance} =
               Wasmbeam.load(~S[(module (func (export "neg") (param i32) (result i32)
                 i32.const 0 local.get 0 i32.sub))])

      assert {:ok, [-5]} = Wasmbeam.Instance.call(instance, "neg", [5])
    end

    test "returns compile errors instead of raising" do
      assert {:error, %Wasmbeam.Error{kind: :parse}} = Wasmbeam.load("(module")

      assert {:error, %Wasmbeam.Error{kind: :validation, offset: offset}} =
               Wasmbeam.load(<<0, "asm", 1, 0, 0, 0, 99>>)

      assert is_integer(offset)
    end

    test "passes imports and options through to Instance.new/3" do
      wat =
        ~S[(module (import "env" "k" (global i32)) (func (export "k") (result i32) global.get 0))]

      assert {:ok, instance} = Wasmbeam.load(wat, %{"env" => %{"k" => {:global, :i32, 9}}})
      assert {:ok, [9]} = Wasmbeam.Instance.call(instance, "k", [])

      assert {:error, %Wasmbeam.Error{kind: :link}} = Wasmbeam.load(wat, %{})

      assert {:error, %Wasmbeam.Error{kind: :limit}} =
               Wasmbeam.load("(module (memory 2))", %{}, memory_size: 65_536)
    end
  end
end
