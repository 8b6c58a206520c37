defmodule Wasmbeam.EngineTest do
  use ExUnit.Case, async: true

  import Bitwise, only: [<<<: 2]

  alias Wasmbeam.{Engine, Error, Instance, Module}
  alias Wasmbeam.Engine.Config

  @add ~S[(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))]
  @traps ~S[(module
    (func $boom (export "boom") unreachable)
    (func (export "div") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_u)
    (func (export "spin") (loop br 0)))]

  # Winch does not implement these proposals; they are on by default.
  @winch_features [relaxed_simd: false, tail_call: false]

  defp run_add(engine) do
    engine |> Module.compile!(@add) |> Instance.new!() |> Instance.call("add", [40, 2])
  end

  describe "Config.new/1" do
    test "defaults" do
      assert {:ok, %Config{} = c} = Config.new()
      assert c.strategy == :cranelift
      assert c.opt_level == :speed
      assert c.consume_fuel == false
      assert c.epoch_interruption == true
      assert c.backtrace_details == false
      assert c.parallel_compilation == true
      assert c.ticker_realtime == true
      assert c.async_stack_size > c.max_wasm_stack
      assert c.features == Config.default_features()
      # Wasmtime 48's defaults (the Wasm 3.0 set), threads excepted.
      for on <- [:memory64, :gc, :function_references, :exceptions, :tail_call, :multi_memory] do
        assert c.features[on] == true, "#{on}"
      end

      assert c.features[:threads] == false
    end

    test "accepts every option with a valid value" do
      options = [
        strategy: :pulley,
        opt_level: :speed_and_size,
        consume_fuel: true,
        epoch_interruption: false,
        backtrace_details: true,
        parallel_compilation: false,
        max_wasm_stack: 256 * 1024,
        async_stack_size: 1024 * 1024,
        features: [memory64: false, simd: false, relaxed_simd: false]
      ]

      assert {:ok, c} = Config.new(options)
      assert c.strategy == :pulley
      assert c.opt_level == :speed_and_size
      assert c.consume_fuel
      refute c.epoch_interruption
      assert c.backtrace_details
      refute c.parallel_compilation
      assert c.max_wasm_stack == 256 * 1024
      assert c.async_stack_size == 1024 * 1024
      assert c.features[:memory64] == false
      assert c.features[:simd] == false
      # features not mentioned keep their defaults
      assert c.features[:bulk_memory] == true
      assert length(c.features) == length(Config.default_features())
    end

    test "strategy and opt_level take only known atoms" do
      assert {:error, %Error{kind: :argument, message: msg}} = Config.new(strategy: :v8)
      assert msg =~ "strategy"
      assert msg =~ ":v8"

      assert {:error, %Error{kind: :argument, message: msg}} = Config.new(strategy: "winch")
      assert msg =~ "strategy"

      assert {:error, %Error{kind: :argument, message: msg}} = Config.new(opt_level: :fast)
      assert msg =~ "opt_level"
      assert msg =~ ":fast"
    end

    test "boolean options refuse non-booleans" do
      for key <- [
            :consume_fuel,
            :epoch_interruption,
            :backtrace_details,
            :parallel_compilation,
            :ticker_realtime
          ],
          value <- [1, nil, "true", :yes] do
        assert {:error, %Error{kind: :argument, message: msg}} = Config.new([{key, value}]),
               "#{key}: #{inspect(value)}"

        assert msg == "#{key} must be a boolean, got: #{inspect(value)}"
      end
    end

    test "stack sizes must be positive integers" do
      for key <- [:max_wasm_stack, :async_stack_size], value <- [0, -1, 1.5, "1024", nil] do
        assert {:error, %Error{kind: :argument, message: msg}} = Config.new([{key, value}]),
               "#{key}: #{inspect(value)}"

        assert msg =~ "#{key} must be a positive integer"
      end
    end

    test "async_stack_size must be larger than max_wasm_stack" do
      assert {:error, %Error{kind: :argument, message: msg}} =
               Config.new(max_wasm_stack: 1 <<< 20, async_stack_size: 1 <<< 20)

      assert msg =~
               "async_stack_size (1048576) must exceed max_wasm_stack (1048576) by at least 262144 bytes"

      assert {:error, %Error{kind: :argument}} =
               Config.new(max_wasm_stack: 4 <<< 20, async_stack_size: 1 <<< 20)

      # a larger stack alone is checked against the other default
      assert {:error, %Error{kind: :argument}} = Config.new(max_wasm_stack: 4 <<< 20)

      assert {:ok, _} = Config.new(max_wasm_stack: 4 <<< 20, async_stack_size: 8 <<< 20)
    end

    test "unknown options are refused" do
      assert {:error, %Error{kind: :argument, message: "unknown engine option :fuel"}} =
               Config.new(fuel: true)
    end

    test "features must be known {name, boolean} pairs" do
      assert {:error, %Error{kind: :argument, message: msg}} = Config.new(features: [bogus: true])
      assert msg =~ "unknown feature :bogus"

      assert {:error, %Error{kind: :argument, message: msg}} = Config.new(features: [simd: 1])
      assert msg =~ "features must be {name, boolean} pairs"

      assert {:error, %Error{kind: :argument, message: msg}} = Config.new(features: [:simd])
      assert msg =~ "features must be {name, boolean} pairs"
    end

    test "features that is not a list gets a message about features, not 'unknown option'" do
      assert {:error, %Error{kind: :argument, message: msg}} = Config.new(features: :simd)
      assert msg =~ "features"
      refute msg =~ "unknown engine option"
    end

    test "a list element that is not a {key, value} pair is an :argument error, not a crash" do
      assert {:error, %Error{kind: :argument}} = Config.new([:consume_fuel])
    end
  end

  describe "new/1" do
    test "takes a keyword list or a %Config{}" do
      assert {:ok, %Engine{config: %Config{consume_fuel: true}} = e1} =
               Engine.new(consume_fuel: true)

      assert is_reference(e1.ref)
      {:ok, config} = Config.new(opt_level: :none)
      assert {:ok, %Engine{config: ^config}} = Engine.new(config)
    end

    test "returns the Config validation error" do
      assert {:error, %Error{kind: :argument}} = Engine.new(strategy: :v8)
      assert {:error, %Error{kind: :argument}} = Engine.new(nope: 1)
    end

    test "a combination Wasmtime refuses is an :argument error" do
      assert {:error, %Error{kind: :argument, message: msg}} = Engine.new(features: [simd: false])
      assert msg =~ "invalid engine configuration"
      assert msg =~ "relaxed simd"
    end

    test "stack sizes too large for the native side are an :argument error, not a raise" do
      assert {:error, %Error{kind: :argument}} =
               Engine.new(max_wasm_stack: 1 <<< 70, async_stack_size: 1 <<< 71)
    end

    # With async_stack_size <= 4096 (and a smaller max_wasm_stack) the engine
    # is created, and the first call on it kills the whole VM with a
    # segfault. This test only creates the engine: it must be refused.
    test "an async_stack_size too small to run anything is refused with :argument" do
      for {max, async} <- [{1, 2}, {1, 4096}, {2048, 4096}] do
        assert {:error, %Error{kind: :argument}} =
                 Engine.new(max_wasm_stack: max, async_stack_size: async),
               "max_wasm_stack: #{max}, async_stack_size: #{async}"
      end
    end

    test "new!/1 raises Wasmbeam.Error" do
      assert %Engine{} = Engine.new!()

      assert_raise Error, ~r/strategy must be one of/, fn -> Engine.new!(strategy: :v8) end
    end
  end

  describe "strategies" do
    test "cranelift with each opt_level compiles and runs" do
      for level <- [:none, :speed, :speed_and_size] do
        assert {:ok, [42]} = run_add(Engine.new!(opt_level: level)), "opt_level #{level}"
      end
    end

    test "winch works with the default features" do
      assert {:ok, engine} = Engine.new(strategy: :winch)
      assert {:ok, [42]} = run_add(engine)
    end

    test "winch compiles and runs a module, traps and times out" do
      engine = Engine.new!(strategy: :winch, features: @winch_features)
      assert {:ok, [42]} = run_add(engine)

      instance = engine |> Module.compile!(@traps) |> Instance.new!()

      assert {:error, %Error{kind: :trap, trap: :unreachable}} =
               Instance.call(instance, "boom", [])

      assert {:error, %Error{kind: :trap, trap: :integer_division_by_zero}} =
               Instance.call(instance, "div", [1, 0])

      assert {:error, %Error{kind: :timeout}} = Instance.call(instance, "spin", [], timeout: 20)
      assert {:ok, [3]} = Instance.call(instance, "div", [7, 2])
    end

    test "pulley (the interpreter) compiles and runs a module, traps and times out" do
      engine = Engine.new!(strategy: :pulley)
      assert inspect(engine) =~ "pulley"
      assert {:ok, [42]} = run_add(engine)

      instance = engine |> Module.compile!(@traps) |> Instance.new!()

      assert {:error, %Error{kind: :trap, trap: :unreachable, backtrace: [frame | _]}} =
               Instance.call(instance, "boom", [])

      assert frame.func_name == "boom"

      assert {:error, %Error{kind: :trap, trap: :integer_division_by_zero}} =
               Instance.call(instance, "div", [1, 0])

      assert {:error, %Error{kind: :timeout}} = Instance.call(instance, "spin", [], timeout: 20)
      assert {:ok, [3]} = Instance.call(instance, "div", [7, 2])
    end
  end

  describe "options change behaviour" do
    test "consume_fuel meters calls" do
      engine = Engine.new!(consume_fuel: true)
      assert engine.config.consume_fuel
      instance = engine |> Module.compile!(@traps) |> Instance.new!()

      assert {:error, %Error{kind: :out_of_fuel}} =
               Instance.call(instance, "spin", [], fuel: 1_000)
    end

    test "epoch_interruption: false runs calls but refuses timeout:" do
      engine = Engine.new!(epoch_interruption: false)
      instance = engine |> Module.compile!(@traps) |> Instance.new!()
      assert {:ok, [3]} = Instance.call(instance, "div", [7, 2])

      assert {:error, %Error{kind: :argument, message: msg}} =
               Instance.call(instance, "div", [7, 2], timeout: 100)

      assert msg =~ "epoch_interruption"
    end

    test "backtrace_details and parallel_compilation: false still compile and run" do
      assert {:ok, [42]} = run_add(Engine.new!(backtrace_details: true))
      assert {:ok, [42]} = run_add(Engine.new!(parallel_compilation: false))
    end

    test "features switch proposals on and off" do
      mem64 = ~S[(module (memory (export "m") i64 1))]

      assert [{"m", {:memory, %{memory64: true, min: 1}}}] =
               mem64 |> Module.compile!() |> Module.exports()

      no_mem64 = Engine.new!(features: [memory64: false])
      assert {:error, %Error{kind: :validation}} = Module.compile(no_mem64, mem64)

      simd = ~S[(module (func (param v128)))]
      assert {:ok, _} = Module.compile(simd)
      no_simd = Engine.new!(features: [simd: false, relaxed_simd: false])
      assert {:error, %Error{kind: :validation}} = Module.compile(no_simd, simd)
    end

    test "features: [threads: true] can instantiate a module with a shared memory" do
      engine = Engine.new!(features: [threads: true])

      module =
        Module.compile!(
          engine,
          ~S[(module (memory (export "m") 1 2 shared)
          (func (export "add") (param i32) (result i32) i32.const 0 local.get 0 i32.atomic.rmw.add))]
        )

      assert [{"m", {:memory, %{shared: true}}} | _] = Module.exports(module)
      # today: {:error, %Error{kind: :trap, message: "shared memory support is disabled ..."}}
      assert {:ok, instance} = Instance.new(module)
      assert {:ok, [0]} = Instance.call(instance, "add", [5])
      assert {:ok, [5]} = Instance.call(instance, "add", [5])
    end

    test "a small max_wasm_stack still runs ordinary code and overflows cleanly" do
      engine = Engine.new!(max_wasm_stack: 64 * 1024, async_stack_size: 512 * 1024)
      assert {:ok, [42]} = run_add(engine)

      instance =
        engine
        |> Module.compile!(~S[(module (func $r (export "r") call $r))])
        |> Instance.new!()

      assert {:error, %Error{kind: :trap, trap: :stack_overflow}} =
               Instance.call(instance, "r", [])
    end
  end

  describe "default/0" do
    test "is one engine shared by every process" do
      engine = Engine.default()
      assert %Engine{config: %Config{} = config} = engine
      assert config == %Config{}

      refs =
        1..8
        |> Enum.map(fn _ -> Task.async(fn -> Engine.default().ref end) end)
        |> Enum.map(&Task.await/1)

      assert Enum.uniq(refs) == [engine.ref]
      assert Module.compile!(@add).engine.ref == engine.ref
    end
  end

  describe "compatibility_hash/1" do
    test "is equal for equal configurations and differs otherwise" do
      hash = Engine.compatibility_hash(Engine.default())
      assert is_integer(hash) and hash >= 0
      assert Engine.compatibility_hash(Engine.new!()) == hash
      refute Engine.compatibility_hash(Engine.new!(consume_fuel: true)) == hash
      refute Engine.compatibility_hash(Engine.new!(strategy: :pulley)) == hash
    end
  end

  test "inspect shows the strategy, fuel and epoch settings" do
    assert inspect(Engine.default()) == "#Wasmbeam.Engine<cranelift, fuel: false, epoch: true>"

    assert inspect(Engine.new!(consume_fuel: true, epoch_interruption: false)) ==
             "#Wasmbeam.Engine<cranelift, fuel: true, epoch: false>"
  end

  describe "pooling allocator" do
    @data_wat ~S[(module (memory (export "memory") 1) (data (i32.const 0) "hi")
      (func (export "first") (result i32) i32.const 0 i32.load8_u)
      (func (export "poke") (i32.store8 (i32.const 0) (i32.const 7))))]

    test "instances come from the pool's slots; a full pool is a :limit error" do
      limits = [total_instances: 2, total_memories: 2, total_tables: 2, total_stacks: 2]
      engine = Wasmbeam.Engine.new!(pooling: limits)
      module = Wasmbeam.Module.compile!(engine, @data_wat)
      a = Wasmbeam.Instance.new!(module)
      b = Wasmbeam.Instance.new!(module)

      # Copy-on-write images: each instance sees the data segment and its
      # own writes only.
      assert {:ok, []} = Wasmbeam.Instance.call(a, "poke", [])
      assert {:ok, [7]} = Wasmbeam.Instance.call(a, "first", [])
      assert {:ok, [104]} = Wasmbeam.Instance.call(b, "first", [])

      assert {:error, %Wasmbeam.Error{kind: :limit, message: message}} =
               Wasmbeam.Instance.new(module)

      assert message =~ "limit of 2"
    end

    test "works with linked modules, host functions and WASI" do
      engine = Wasmbeam.Engine.new!(pooling: true)

      wat = ~S[(module (import "env" "f" (func $f (param i32) (result i32)))
        (func (export "g") (param i32) (result i32) (call $f (local.get 0))))]

      imports = %{"env" => %{"f" => {:fn, [:i32], [:i32], fn _caller, x -> x + 1 end}}}
      linked = Wasmbeam.LinkedModule.new!(Wasmbeam.Module.compile!(engine, wat), imports)
      assert {:ok, [2]} = Wasmbeam.Instance.call(Wasmbeam.Instance.new!(linked), "g", [1])

      tool = Wasmbeam.Module.compile_file!(engine, Wasmbeam.Test.WasiFixtures.path!("wasi_tool"))

      assert {:ok, %{stdout: "pooled"}} =
               Wasmbeam.Wasi.run(tool, args: ["echo"], stdin: "pooled", engine: engine)
    end

    test "bad limits are refused" do
      for bad <- [[total_instances: 0], [bogus: 1], :yes, [max_memory_size: -1]] do
        assert {:error, %Wasmbeam.Error{kind: :argument}} = Wasmbeam.Engine.new(pooling: bad)
      end
    end
  end
end
