defmodule Wasmbeam.ArgumentErrorsTest do
  # Regression (issue #15, item 8): bad arguments are `:argument` errors
  # that say what was wrong (and the `!` variants raise that error), not
  # exceptions from deep inside. Before: `Wasmbeam.Store.new/2` given a
  # non-engine raised `KeyError` (or `UndefinedFunctionError`),
  # `Wasmbeam.Job.coerce_args/2` raised `Protocol.UndefinedError`,
  # `Wasmbeam.Engine.new(pooling: [total_instances: 2 ** 40])` raised
  # `ErlangError "Could not decode field :pooling"`, and a memory or table
  # import beyond 64 bits was "not a resolved import: {:define_memory, ...}".
  use ExUnit.Case, async: true

  alias Wasmbeam.{Engine, Error, Instance, Job, Module, Store}

  defp argument(result, about) do
    assert {:error, %Error{kind: :argument, message: message}} = result
    assert message =~ about
    message
  end

  describe "Store.new/2" do
    test "a non-engine, or options that are not a keyword list" do
      for not_an_engine <- [:not_engine, %{}, %{ref: make_ref()}, "engine", nil] do
        argument(Store.new(not_an_engine), "engine")

        assert_raise Error, ~r/engine/, fn -> Store.new!(not_an_engine) end
      end

      argument(Store.new(Engine.default(), :fast), "options")
      argument(Store.new(Engine.default(), [:fuel]), "store option")
      assert {:ok, %Store{}} = Store.new(Engine.default(), memory_size: 65_536)
    end
  end

  describe "Job.coerce_args/2" do
    test "types and arguments that are not proper lists" do
      for {params, args} <- [
            {[:i32], :x},
            {:x, [1]},
            {%{a: 1}, %{b: 2}},
            {[:i32], [1 | 2]},
            {[:i32 | :i64], [1]}
          ] do
        argument(Job.coerce_args(params, args), "list")
      end

      assert {:ok, [1]} = Job.coerce_args([:i32], [1])
    end

    test "a job whose arguments are an improper list is cancelled, not run" do
      wat = ~S[(module (func (export "f") (param i32)))]

      assert {:cancel, %Error{kind: :argument, message: message}} =
               Job.run({:bytes, wat}, "f", [1 | 2])

      assert message =~ "list"
    end
  end

  describe "Engine pooling limits" do
    test "out of range: an :argument error before the NIF" do
      for {key, value} <- [
            total_instances: 2 ** 40,
            total_memories: 2 ** 32,
            total_tables: 2 ** 32,
            total_stacks: 2 ** 64,
            max_memory_size: 2 ** 64
          ] do
        message = argument(Engine.new(pooling: [{key, value}]), "#{key}")
        assert message =~ "#{value}"
        assert_raise Error, ~r/#{key}/, fn -> Engine.new!(pooling: [{key, value}]) end
        argument(Engine.Config.new(pooling: [{key, value}]), "#{key}")
      end
    end

    test "a configuration built by hand is checked too" do
      {:ok, config} = Engine.Config.new()
      config = %{config | pooling: %{total_instances: 2 ** 40}}
      argument(Engine.new(config), "pooling")
    end
  end

  describe "memory and table imports" do
    setup do
      %{
        memory: Module.compile!(~S[(module (import "env" "m" (memory 1)))]),
        table: Module.compile!(~S[(module (import "env" "t" (table 1 funcref)))])
      }
    end

    test "a memory larger than a 32-bit memory can be", %{memory: module} do
      for spec <- [
            {:memory, 2 ** 40},
            {:memory, 2 ** 70},
            {:memory, 65_537},
            {:memory, 1, 2 ** 40},
            {:memory, 1, 2 ** 70}
          ] do
        message = argument(Instance.new(module, %{"env" => %{"m" => spec}}), "pages")
        assert message =~ ~s("env" "m")
      end

      assert {:ok, _} = Instance.new(module, %{"env" => %{"m" => {:memory, 1, 65_536}}})
    end

    test "a table larger than a 32-bit table can be", %{table: module} do
      for spec <- [
            {:table, :funcref, 2 ** 40},
            {:table, :funcref, 2 ** 70},
            {:table, :funcref, 1, 2 ** 32},
            {:table, :funcref, 1, 2 ** 70}
          ] do
        message = argument(Instance.new(module, %{"env" => %{"t" => spec}}), "elements")
        assert message =~ ~s("env" "t")
      end

      assert {:ok, _} = Instance.new(module, %{"env" => %{"t" => {:table, :funcref, 1, 10}}})
    end
  end
end
