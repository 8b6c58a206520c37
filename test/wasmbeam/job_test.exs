defmodule Wasmbeam.JobTest do
  use ExUnit.Case, async: true

  alias Wasmbeam.{Error, Instance, Job, Module, Pool}

  doctest Wasmbeam.Job

  @wat ~S"""
  (module
    (func (export "nothing"))
    (func (export "scale") (param f64 i64) (result f64) local.get 0 local.get 1 f64.convert_i64_s f64.mul)
    (func (export "pair") (param i32) (result i32 i32) local.get 0 local.get 0 i32.const 1 i32.add)
    (func (export "div") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_s)
    (func (export "spin") (loop br 0)))
  """

  setup do
    %{module: Module.compile!(@wat)}
  end

  describe "results" do
    test "nothing, one value, several values", %{module: module} do
      assert Job.run(module, "nothing", []) == :ok
      assert Job.run(module, "div", [9, 3]) == {:ok, 3}
      assert Job.run(module, "pair", [4]) == {:ok, [4, 5]}
    end

    test "JSON-style arguments are converted by the parameter types", %{module: module} do
      assert Job.run(module, "scale", [2, 3.0]) == {:ok, 6.0}
      assert Job.run(module, "div", [true, 1.0]) == {:ok, 1}
      assert {:cancel, %Error{kind: :type}} = Job.run(module, "div", ["9", 3])
      assert {:cancel, %Error{kind: :type}} = Job.run(module, "div", [9.5, 3])
      assert {:cancel, %Error{kind: :arity}} = Job.run(module, "div", [9])
    end
  end

  describe "sources" do
    test "a pool", %{module: module} do
      start_supervised!({Pool, name: __MODULE__.Pool, module: module, size: 1})
      assert Job.run({:pool, __MODULE__.Pool}, "div", [8, 2]) == {:ok, 4}
      assert {:cancel, %Error{kind: :trap}} = Job.run({:pool, __MODULE__.Pool}, "div", [8, 0])
    end

    test "an instance process", %{module: module} do
      server = start_supervised!({Instance, module: module})
      assert Job.run({:instance, server}, "div", [8, 2]) == {:ok, 4}

      assert {:error, %Error{kind: :down}} =
               Job.run({:instance, :no_such_instance}, "div", [1, 1])
    end

    @tag :tmp_dir
    test "a file, wasm or WAT", %{tmp_dir: dir} do
      path = Path.join(dir, "job.wat")
      File.write!(path, @wat)
      assert Job.run({:file, path}, "div", [8, 2]) == {:ok, 4}

      assert {:cancel, %Error{kind: :argument, message: message}} =
               Job.run({:file, Path.join(dir, "missing.wasm")}, "div", [1, 1])

      assert message =~ "missing.wasm"
    end

    test "bytes that are not a module are cancelled" do
      assert {:cancel, %Error{kind: :parse}} = Job.run({:bytes, "(module"}, "f", [])
      assert {:cancel, %Error{kind: :argument}} = Job.run({:unknown, 1}, "f", [])
      assert {:cancel, %Error{kind: :argument}} = Job.run({:bytes, "(module)"}, :f, [])
    end
  end

  describe "budgets" do
    test "a timeout is retryable", %{module: module} do
      assert {:error, %Error{kind: :timeout}} = Job.run(module, "spin", [], timeout: 10)
    end

    test "exhausted fuel is cancelled" do
      engine = Wasmbeam.Engine.new!(consume_fuel: true)
      module = Module.compile!(engine, @wat)
      assert {:cancel, %Error{kind: :out_of_fuel}} = Job.run(module, "spin", [], fuel: 10_000)
      assert Job.run(module, "div", [4, 2], fuel: 10_000) == {:ok, 2}
    end

    test "a memory limit below the module's memory is cancelled" do
      wat = ~S[(module (memory 2) (func (export "f")))]
      assert Job.run({:bytes, wat}, "f", [], memory: 2 * 65_536) == :ok
      assert {:cancel, %Error{kind: :limit}} = Job.run({:bytes, wat}, "f", [], memory: 65_536)
    end
  end

  describe "back-pressure" do
    setup %{module: module} do
      start_supervised!({Pool, name: __MODULE__.Busy, module: module, size: 1, max_waiting: 0})
      test = self()

      holder =
        spawn(fn ->
          Pool.checkout(__MODULE__.Busy, fn _ ->
            send(test, :holding)
            receive do: (:release -> :ok)
          end)
        end)

      assert_receive :holding
      on_exit(fn -> send(holder, :release) end)
      :ok
    end

    test "an overloaded pool snoozes" do
      assert Job.run({:pool, __MODULE__.Busy}, "div", [1, 1], snooze: 7) == {:snooze, 7}
      assert Job.run({:pool, __MODULE__.Busy}, "div", [1, 1]) == {:snooze, 5}
    end
  end

  test "a checkout timeout is retryable", %{module: module} do
    start_supervised!({Pool, name: __MODULE__.Slow, module: module, size: 1})
    test = self()

    holder =
      spawn(fn ->
        Pool.checkout(__MODULE__.Slow, fn _ ->
          send(test, :holding)
          receive do: (:release -> :ok)
        end)
      end)

    assert_receive :holding

    assert {:error, %Error{kind: :timeout}} =
             Job.run({:pool, __MODULE__.Slow}, "div", [1, 1], checkout_timeout: 10)

    send(holder, :release)
  end
end
