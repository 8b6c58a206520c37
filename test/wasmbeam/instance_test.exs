defmodule Wasmbeam.InstanceTest do
  use ExUnit.Case, async: true

  import Bitwise, only: [<<<: 2]
  import Wasmbeam.Test.Wat

  alias Wasmbeam.{Engine, Error, Func, Global, Instance, Memory, Module, Store, Table}

  @traps ~S[(module
    (type $void (func))
    (type $ret_i32 (func (result i32)))
    (memory (export "mem") 1)
    (table 2 funcref)
    (elem (i32.const 1) $void_fn)
    (func $void_fn (type $void))
    (func $foo (export "unreachable") unreachable)
    (func $bar (export "nested") call $foo)
    (func $baz (export "deeper") call $bar)
    (func (export "div_s") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_s)
    (func (export "rem_u") (param i64 i64) (result i64) local.get 0 local.get 1 i64.rem_u)
    (func (export "load") (param i32) (result i32) local.get 0 i32.load)
    (func (export "store") (param i32 i32) local.get 0 local.get 1 i32.store)
    (func (export "trunc") (param f32) (result i32) local.get 0 i32.trunc_f32_s)
    (func (export "call_null") (call_indirect (type $void) (i32.const 0)))
    (func (export "call_bad_sig") (result i32) (call_indirect (type $ret_i32) (i32.const 1)))
    (func (export "call_oob") (call_indirect (type $void) (i32.const 7)))
    (func $recurse (export "recurse") (result i32) call $recurse)
    (func (export "spin") (loop br 0))
    (func (export "answer") (result i32) i32.const 42))]

  setup_all do
    %{traps: Module.compile!(@traps)}
  end

  describe "new/3" do
    test "instantiates into a new store by default", %{traps: module} do
      assert {:ok, %Instance{module: ^module, store: %Store{} = store} = i1} =
               Instance.new(module)

      assert {:ok, %Instance{store: other}} = Instance.new(module)
      refute store.ref == other.ref
      assert store.engine == module.engine
      assert {:ok, [42]} = Instance.call(i1, "answer", [])
    end

    test "instantiates into a given store", %{traps: module} do
      store = Store.new!()
      assert {:ok, %Instance{store: ^store} = a} = Instance.new(module, %{}, store: store)
      assert {:ok, %Instance{store: ^store} = b} = Instance.new(module, %{}, store: store)
      # separate instances: separate memories
      assert {:ok, []} = Instance.call(a, "store", [0, 1])
      assert {:ok, [0]} = Instance.call(b, "load", [0])
      assert {:ok, [1]} = Instance.call(a, "load", [0])
    end

    test "store limits go to the new store; with store: they are refused", %{traps: module} do
      assert {:error, %Error{kind: :limit}} = Instance.new(module, %{}, memory_size: 1)

      assert {:error, %Error{kind: :argument, message: msg}} =
               Instance.new(module, %{}, store: Store.new!(), memory_size: 1 <<< 20)

      assert msg =~ "memory_size"
    end

    test "a store: that is not a store is an :argument error", %{traps: module} do
      assert {:error, %Error{kind: :argument, message: msg}} =
               Instance.new(module, %{}, store: :nope)

      assert msg =~ "store must be"
    end

    test "invalid options are :argument errors", %{traps: module} do
      assert {:error, %Error{kind: :argument}} = Instance.new(module, %{}, bogus: 1)
      assert {:error, %Error{kind: :argument}} = Instance.new(module, %{}, timeout: :soon)
      assert {:error, %Error{kind: :argument}} = Instance.new(module, %{}, memory_size: -1)
    end

    test "a module from another engine than the store's is a :link error", %{traps: module} do
      store = Store.new!(Engine.new!())

      assert {:error, %Error{kind: :link, message: msg}} = Instance.new(module, %{}, store: store)

      assert msg =~ "another engine"
    end

    test "new!/3 raises Wasmbeam.Error", %{traps: module} do
      assert %Instance{} = Instance.new!(module)

      assert_raise Error, ~r/\(link\) missing import/, fn ->
        Instance.new!(Module.compile!(~S[(module (import "a" "b" (func)))]))
      end
    end
  end

  describe "start function" do
    test "runs at instantiation" do
      instance = instance!(~S[(module (global $g (mut i32) (i32.const 0))
          (func $init i32.const 7 global.set $g) (start $init)
          (func (export "g") (result i32) global.get $g))])

      assert {:ok, [7]} = Instance.call(instance, "g", [])
    end

    test "a trapping start function gives a :trap error with its name in the backtrace" do
      module = Module.compile!(~S[(module (func $init unreachable) (start $init))])

      assert {:error, %Error{kind: :trap, trap: :unreachable, backtrace: [frame]}} =
               Instance.new(module)

      assert frame.func_name == "init"
    end

    test "a looping start function with timeout: gives :timeout and leaves the store usable" do
      module = Module.compile!(~S[(module (func $init (loop br 0)) (start $init))])
      store = Store.new!()

      assert {:error, %Error{kind: :timeout}} =
               Instance.new(module, %{}, store: store, timeout: 50)

      answer = Module.compile!(~S[(module (func (export "f") (result i32) i32.const 1))])
      assert {:ok, instance} = Instance.new(answer, %{}, store: store)
      assert {:ok, [1]} = Instance.call(instance, "f", [])
    end

    test "a looping start function with fuel: gives :out_of_fuel" do
      engine = Engine.new!(consume_fuel: true)
      module = Module.compile!(engine, ~S[(module (func $init (loop br 0)) (start $init))])

      # without store:, fuel: is the new store's initial fuel
      assert {:error, %Error{kind: :out_of_fuel}} = Instance.new(module, %{}, fuel: 1_000)
      # with store:, fuel: is a budget for the start function
      store = Store.new!(engine)

      assert {:error, %Error{kind: :out_of_fuel}} =
               Instance.new(module, %{}, store: store, fuel: 1_000)
    end
  end

  describe "call/4" do
    setup %{traps: module}, do: %{instance: Instance.new!(module)}

    test "wrong arity is an :arity error", %{instance: instance} do
      assert {:error, %Error{kind: :arity, message: "expected 2 argument(s), got 0"}} =
               Instance.call(instance, "div_s", [])

      assert {:error, %Error{kind: :arity, message: "expected 2 argument(s), got 3"}} =
               Instance.call(instance, "div_s", [1, 2, 3])

      assert {:error, %Error{kind: :arity, message: "expected 0 argument(s), got 1"}} =
               Instance.call(instance, "answer", [1])
    end

    test "wrong types are :type errors naming the argument", %{instance: instance} do
      assert {:error, %Error{kind: :type, message: msg}} =
               Instance.call(instance, "div_s", [1, 2.0])

      assert msg =~ "argument 2 must be i32"

      for bad <- ["1", :one, nil, true, [1], {1}, 1 <<< 32, -(1 <<< 31) - 1] do
        assert {:error, %Error{kind: :type}} = Instance.call(instance, "div_s", [bad, 1]),
               inspect(bad)
      end

      assert {:error, %Error{kind: :type, message: msg}} =
               Instance.call(instance, "rem_u", [1, 1.5])

      assert msg =~ "argument 2 must be i64"
    end

    test "arguments that are not a list are an :argument error", %{instance: instance} do
      for bad <- [:x, {1, 2}, 1, %{}, "12"] do
        assert {:error, %Error{kind: :argument, message: "arguments must be a proper list"}} =
                 Instance.call(instance, "div_s", bad)
      end
    end

    test "an improper list is an :argument error, not a native panic", %{instance: instance} do
      assert {:error, %Error{kind: :argument}} = Instance.call(instance, "div_s", [1 | 2])
    end

    test "an unknown export is :not_found", %{instance: instance} do
      assert {:error, %Error{kind: :not_found, message: msg}} =
               Instance.call(instance, "nope", [])

      assert msg =~ "nope"
      assert {:error, %Error{kind: :not_found}} = Instance.call(instance, "", [])
    end

    test "a name that is not UTF-8 is :not_found (or :argument), not a raise",
         %{instance: instance} do
      assert {:error, %Error{kind: kind}} = Instance.call(instance, <<255, 0>>, [])
      assert kind in [:not_found, :argument]
      assert {:error, %Error{kind: kind}} = Instance.export(instance, <<255, 0>>)
      assert kind in [:not_found, :argument]
    end

    test "a name with a NUL byte is just another unknown name", %{instance: instance} do
      assert {:error, %Error{kind: :not_found}} = Instance.call(instance, "ans\0wer", [])
    end

    test "calling a memory export as a function is :not_found", %{instance: instance} do
      assert {:error, %Error{kind: :not_found, message: msg}} = Instance.call(instance, "mem", [])

      assert msg =~ "mem"
    end

    test "call!/4 returns the results or raises", %{instance: instance} do
      assert [42] = Instance.call!(instance, "answer", [])

      error = assert_raise Error, fn -> Instance.call!(instance, "unreachable", []) end
      assert error.kind == :trap
      assert error.trap == :unreachable

      assert_raise Error, ~r/\(arity\)/, fn -> Instance.call!(instance, "answer", [1]) end
    end

    test "repeated calls by name keep working and see state", %{instance: instance} do
      for i <- 1..50 do
        assert {:ok, []} = Instance.call(instance, "store", [4 * i, i])
      end

      assert {:ok, [50]} = Instance.call(instance, "load", [200])
    end
  end

  describe "traps" do
    setup %{traps: module}, do: %{instance: Instance.new!(module)}

    @cases [
      {"unreachable", [], :unreachable},
      {"div_s", [1, 0], :integer_division_by_zero},
      {"rem_u", [1, 0], :integer_division_by_zero},
      {"div_s", [-2_147_483_648, -1], :integer_overflow},
      {"load", [65_535], :memory_out_of_bounds},
      {"store", [-1, 0], :memory_out_of_bounds},
      {"trunc", [:nan], :bad_conversion_to_integer},
      {"trunc", [1.0e10], :integer_overflow},
      {"call_null", [], :indirect_call_to_null},
      {"call_bad_sig", [], :bad_signature},
      {"call_oob", [], :table_out_of_bounds},
      {"recurse", [], :stack_overflow}
    ]

    for {name, args, trap} <- @cases do
      test "#{name}(#{inspect(args)}) traps with #{trap} and the instance still answers",
           %{instance: instance} do
        assert {:error, %Error{kind: :trap, trap: unquote(trap), message: msg, backtrace: bt}} =
                 Instance.call(instance, unquote(name), unquote(Macro.escape(args)))

        assert is_binary(msg) and msg != ""
        assert [%{func_index: index} | _] = bt
        assert is_integer(index)
        assert {:ok, [42]} = Instance.call(instance, "answer", [])
        assert {:ok, [3]} = Instance.call(instance, "div_s", [7, 2])
      end
    end

    test "after a stack overflow the same instance and the VM keep working",
         %{instance: instance} do
      for _ <- 1..3 do
        assert {:error, %Error{trap: :stack_overflow}} = Instance.call(instance, "recurse", [])
      end

      assert {:ok, []} = Instance.call(instance, "store", [0, 99])
      assert {:ok, [99]} = Instance.call(instance, "load", [0])
      assert Enum.sum(1..10) == 55
    end

    test "the backtrace names functions, innermost first", %{instance: instance} do
      assert {:error, %Error{backtrace: frames}} = Instance.call(instance, "deeper", [])
      assert Enum.map(frames, & &1.func_name) == ["foo", "bar", "baz"]

      for frame <- frames do
        assert is_integer(frame.func_index)
        assert is_integer(frame.module_offset)
      end

      assert Enum.map(frames, & &1.func_index) |> Enum.uniq() |> length() == 3
    end

    test "frames of unnamed functions have a nil name", %{instance: instance} do
      assert {:error, %Error{backtrace: [frame]}} = Instance.call(instance, "div_s", [1, 0])
      assert frame.func_name == nil
    end

    test "a stack overflow backtrace repeats the recursive function", %{instance: instance} do
      assert {:error, %Error{backtrace: frames}} = Instance.call(instance, "recurse", [])
      assert length(frames) > 10
      assert Enum.all?(frames, &(&1.func_name == "recurse"))
    end

    test "memory written before a trap stays written", %{instance: instance} do
      {:ok, memory} = Instance.memory(instance, "mem")
      assert {:ok, []} = Instance.call(instance, "store", [8, 1234])
      assert {:error, %Error{kind: :trap}} = Instance.call(instance, "unreachable", [])
      assert {:ok, <<1234::little-32>>} = Memory.read(memory, 8, 4)
    end
  end

  describe "timeout:" do
    setup %{traps: module}, do: %{instance: Instance.new!(module)}

    test "stops an infinite loop with :timeout; the instance is usable after",
         %{instance: instance} do
      assert {:error, %Error{kind: :timeout, message: msg}} =
               Instance.call(instance, "spin", [], timeout: 50)

      assert msg =~ "timeout"
      assert {:ok, [42]} = Instance.call(instance, "answer", [])
      # and again
      assert {:error, %Error{kind: :timeout}} = Instance.call(instance, "spin", [], timeout: 10)
      assert {:ok, [42]} = Instance.call(instance, "answer", [])
    end

    test "timeout: 0 on a loop times out", %{instance: instance} do
      assert {:error, %Error{kind: :timeout}} = Instance.call(instance, "spin", [], timeout: 0)
    end

    test "a call that finishes in time returns normally", %{instance: instance} do
      assert {:ok, [42]} = Instance.call(instance, "answer", [], timeout: 5_000)
      assert {:ok, [42]} = Instance.call(instance, "answer", [], timeout: :infinity)
    end

    test "a timeout does not carry over to the next call", %{instance: instance} do
      # A deadline is a whole millisecond, so timeout: 1 may leave a few
      # microseconds: even this call can miss it on a busy machine.
      assert {:ok, [42]} = Instance.call(instance, "answer", [], timeout: 50)
      Process.sleep(60)
      # a loop with a later timeout is not stopped by the earlier deadline,
      # which has passed: it runs until its own
      {micros, result} = :timer.tc(fn -> Instance.call(instance, "spin", [], timeout: 30) end)
      assert {:error, %Error{kind: :timeout}} = result
      assert micros >= 29_000
      assert {:ok, [7]} = Instance.call(instance, "div_s", [14, 2])
    end

    test "the backtrace of a timeout points into the looping function", %{instance: instance} do
      assert {:error, %Error{kind: :timeout, trap: nil, backtrace: [_ | _]}} =
               Instance.call(instance, "spin", [], timeout: 10)
    end
  end

  describe "invalid call options" do
    setup %{traps: module}, do: %{instance: Instance.new!(module)}

    test "are :argument errors", %{instance: instance} do
      for options <- [
            [timeout: -1],
            [timeout: 1.5],
            [timeout: "10"],
            [fuel: -1],
            [fuel: :lots],
            [bogus: true],
            [:timeout]
          ] do
        assert {:error, %Error{kind: :argument, message: msg}} =
                 Instance.call(instance, "answer", [], options),
               inspect(options)

        assert msg =~ "invalid call option"
      end

      assert {:error, %Error{kind: :argument, message: msg}} =
               Instance.call(instance, "answer", [], :fast)

      assert msg =~ "keyword list"

      assert {:error, %Error{kind: :argument, message: msg}} =
               Instance.call(instance, "answer", [], [{:timeout, 5} | :tail])

      assert msg =~ "keyword list"
    end

    test "options are read in order; the last of a repeated key counts", %{instance: instance} do
      assert {:ok, _} = Instance.call(instance, "answer", [], timeout: 5, timeout: :infinity)

      assert {:ok, _} =
               Instance.call(instance, "answer", [], wait: false, timeout: 100, wait: true)
    end

    test "fuel: on an engine without fuel is an :argument error", %{instance: instance} do
      assert {:error, %Error{kind: :argument, message: msg}} =
               Instance.call(instance, "answer", [], fuel: 100)

      assert msg =~ "consume_fuel"
    end

    test "a timeout: too large for the native side is an :argument error, not a raise",
         %{instance: instance} do
      assert {:error, %Error{kind: :argument}} =
               Instance.call(instance, "answer", [], timeout: 1 <<< 64)
    end
  end

  describe "exports" do
    setup do
      instance = instance!(~S[(module
          (memory (export "mem") 1 2)
          (table (export "tab") 1 funcref)
          (global (export "g") (mut i32) (i32.const 3))
          (func (export "f") (param i64) (result f64) f64.const 1))])

      %{instance: instance}
    end

    test "exports/1 lists names and types in order", %{instance: instance} do
      assert Instance.exports(instance) == Module.exports(instance.module)
      assert Enum.map(Instance.exports(instance), &elem(&1, 0)) == ["mem", "tab", "g", "f"]
    end

    test "export/2 returns the right handle for each kind", %{instance: instance} do
      assert {:ok, %Memory{name: "mem"}} = Instance.export(instance, "mem")
      assert {:ok, %Table{name: "tab", element: :funcref}} = Instance.export(instance, "tab")
      assert {:ok, %Global{name: "g", type: :i32, mutable: true}} = Instance.export(instance, "g")

      assert {:ok, %Func{name: "f", params: [:i64], results: [:f64]}} =
               Instance.export(instance, "f")

      assert {:error, %Error{kind: :not_found}} = Instance.export(instance, "nope")
    end

    test "typed lookups refuse other kinds with :not_found", %{instance: instance} do
      assert {:ok, %Func{}} = Instance.func(instance, "f")
      assert {:ok, %Memory{}} = Instance.memory(instance, "mem")
      assert {:ok, %Global{}} = Instance.global(instance, "g")
      assert {:ok, %Table{}} = Instance.table(instance, "tab")

      assert {:error, %Error{kind: :not_found, message: "export \"mem\" is not a function"}} =
               Instance.func(instance, "mem")

      assert {:error, %Error{kind: :not_found, message: "export \"f\" is not a memory"}} =
               Instance.memory(instance, "f")

      assert {:error, %Error{kind: :not_found, message: "export \"tab\" is not a global"}} =
               Instance.global(instance, "tab")

      assert {:error, %Error{kind: :not_found, message: "export \"g\" is not a table"}} =
               Instance.table(instance, "g")

      for lookup <- [&Instance.func/2, &Instance.memory/2, &Instance.global/2, &Instance.table/2] do
        assert {:error, %Error{kind: :not_found}} = lookup.(instance, "missing")
      end
    end

    test "inspect lists the exports", %{instance: instance} do
      assert inspect(instance) ==
               "#Wasmbeam.Instance<mem: memory 1..2, tab: table funcref 1.., " <>
                 "g: global mut i32, f: func (i64) -> f64>"
    end
  end
end
