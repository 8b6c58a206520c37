defmodule Wasmbeam.StoreTest do
  use ExUnit.Case, async: true

  import Bitwise, only: [<<<: 2]
  import Wasmbeam.Test.Wat

  alias Wasmbeam.{Engine, Error, Global, Instance, Memory, Module, Store}

  @page 65_536

  @busy_wat ~S[(module
    (memory (export "mem") 1)
    (global (export "g") (mut i32) (i32.const 0))
    (func (export "spin") (loop br 0))
    (func (export "answer") (result i32) i32.const 42))]

  describe "new/2" do
    test "creates a store on the default or a given engine" do
      assert {:ok, %Store{} = store} = Store.new()
      assert store.engine == Engine.default()
      assert is_reference(store.ref)

      engine = Engine.new!(consume_fuel: true)
      assert {:ok, %Store{engine: ^engine}} = Store.new(engine)
    end

    test "accepts every limit option" do
      assert {:ok, _} =
               Store.new(Engine.default(),
                 memory_size: 1 <<< 20,
                 table_elements: 100,
                 instances: 3,
                 tables: 2,
                 memories: 2
               )

      assert {:ok, _} = Store.new(Engine.new!(consume_fuel: true), fuel: 10)
    end

    test "invalid options are :argument errors" do
      for bad <- [
            [bogus: 1],
            [memory_size: -1],
            [memory_size: 1.5],
            [instances: :many],
            [fuel: -1],
            [:memory_size]
          ] do
        assert {:error, %Error{kind: :argument, message: msg}} = Store.new(Engine.default(), bad),
               inspect(bad)

        assert msg =~ "invalid store option"
      end
    end

    test "fuel: on an engine without fuel is an :argument error" do
      assert {:error, %Error{kind: :argument, message: msg}} =
               Store.new(Engine.default(), fuel: 100)

      assert msg =~ "consume_fuel"
    end

    test "a limit too large for the native side is an :argument error, not a raise" do
      assert {:error, %Error{kind: :argument}} =
               Store.new(Engine.default(), memory_size: 1 <<< 70)
    end

    test "new!/2 raises Wasmbeam.Error" do
      assert %Store{} = Store.new!()
      assert_raise Error, ~r/invalid store option/, fn -> Store.new!(Engine.default(), x: 1) end
    end

    test "inspect shows the reference" do
      store = Store.new!()
      assert inspect(store) == "#Wasmbeam.Store<#{inspect(store.ref)}>"
    end
  end

  describe "limits" do
    test "memory_size: makes memory.grow return -1 in the guest" do
      instance =
        instance!(
          ~S[(module (memory (export "mem") 1)
            (func (export "grow") (param i32) (result i32) local.get 0 memory.grow))],
          %{},
          memory_size: 3 * @page
        )

      assert {:ok, [1]} = Instance.call(instance, "grow", [1])
      assert {:ok, [2]} = Instance.call(instance, "grow", [1])
      assert {:ok, [-1]} = Instance.call(instance, "grow", [1])
      assert {:ok, [-1]} = Instance.call(instance, "grow", [100])
      # growing by nothing still works at the limit
      assert {:ok, [3]} = Instance.call(instance, "grow", [0])

      {:ok, memory} = Instance.memory(instance, "mem")
      assert {:ok, 3} = Memory.pages(memory)

      assert {:error, %Error{kind: :limit}} = Memory.grow(memory, 1)
      assert {:ok, 3} = Memory.pages(memory)
    end

    test "an initial memory over memory_size: fails to instantiate with :limit" do
      module = Module.compile!(~S[(module (memory 4))])

      assert {:error, %Error{kind: :limit, message: msg}} =
               Instance.new(module, %{}, memory_size: 3 * @page)

      assert msg =~ "memory"
      assert {:ok, _} = Instance.new(module, %{}, memory_size: 4 * @page)
    end

    test "an over-limit instantiation leaves the store usable" do
      store = Store.new!(Engine.default(), memory_size: @page)

      assert {:error, %Error{kind: :limit}} =
               Instance.new(Module.compile!("(module (memory 2))"), %{}, store: store)

      ok = Module.compile!(~S[(module (memory 1) (func (export "f") (result i32) i32.const 1))])
      assert {:ok, instance} = Instance.new(ok, %{}, store: store)
      assert {:ok, [1]} = Instance.call(instance, "f", [])
    end

    test "a defined memory import over memory_size: is a :limit error (not :link)" do
      module = Module.compile!(~S[(module (import "env" "m" (memory 2)))])
      store = Store.new!(Engine.default(), memory_size: @page)

      assert {:error, %Error{kind: :limit, message: msg}} =
               Instance.new(module, %{"env" => %{"m" => {:memory, 2}}}, store: store)

      assert msg =~ "memory"
    end

    test "instances: limits how many instances a store holds" do
      store = Store.new!(Engine.default(), instances: 2)
      module = Module.compile!("(module)")
      assert {:ok, _} = Instance.new(module, %{}, store: store)
      assert {:ok, _} = Instance.new(module, %{}, store: store)

      assert {:error, %Error{kind: :limit, message: msg}} =
               Instance.new(module, %{}, store: store)

      assert msg =~ "instance"
    end

    test "table_elements:, tables: and memories: are enforced with :limit" do
      assert {:error, %Error{kind: :limit}} =
               Instance.new(Module.compile!("(module (table 10 funcref))"), %{}, table_elements: 5)

      assert {:ok, _} =
               Instance.new(Module.compile!("(module (table 5 funcref))"), %{}, table_elements: 5)

      assert {:error, %Error{kind: :limit}} =
               Instance.new(Module.compile!("(module (table 1 funcref) (table 1 funcref))"), %{},
                 tables: 1
               )

      assert {:error, %Error{kind: :limit}} =
               Instance.new(Module.compile!("(module (memory 1) (memory 1))"), %{}, memories: 1)
    end

    test "table_elements: makes table.grow return -1" do
      instance =
        instance!(
          ~S[(module (table 1 funcref)
            (func (export "grow") (param i32) (result i32) ref.null func local.get 0 table.grow 0))],
          %{},
          table_elements: 3
        )

      assert {:ok, [1]} = Instance.call(instance, "grow", [2])
      assert {:ok, [-1]} = Instance.call(instance, "grow", [1])
    end
  end

  describe "fuel" do
    setup do
      engine = Engine.new!(consume_fuel: true)

      module = Module.compile!(engine, ~S[(module
          (func (export "spin") (loop br 0))
          (func (export "count") (param i32) (result i32) (local i32)
            (loop
              (local.set 1 (i32.add (local.get 1) (i32.const 1)))
              (br_if 0 (i32.lt_u (local.get 1) (local.get 0))))
            local.get 1))])

      %{engine: engine, module: module}
    end

    test "a new store has all the fuel unless told otherwise", %{engine: engine} do
      assert {:ok, fuel} = Store.fuel(Store.new!(engine))
      assert fuel == (1 <<< 64) - 1
      assert {:ok, 1000} = Store.fuel(Store.new!(engine, fuel: 1000))
    end

    test "Instance.new fuel: sets the new store's fuel", %{module: module} do
      instance = Instance.new!(module, %{}, fuel: 5_000)
      assert {:ok, 5_000} = Store.fuel(instance.store)
    end

    test "a call uses fuel; Store.fuel/1 decreases", %{module: module} do
      instance = Instance.new!(module, %{}, fuel: 100_000)
      assert {:ok, [100]} = Instance.call(instance, "count", [100])
      assert {:ok, after_one} = Store.fuel(instance.store)
      assert after_one < 100_000
      assert after_one > 0

      assert {:ok, [100]} = Instance.call(instance, "count", [100])
      assert {:ok, after_two} = Store.fuel(instance.store)
      # metering is deterministic: the same call costs the same
      assert 100_000 - after_one == after_one - after_two

      assert {:ok, [1000]} = Instance.call(instance, "count", [1000])
      assert {:ok, after_three} = Store.fuel(instance.store)
      assert after_two - after_three > after_one - after_two
    end

    test "fuel: per call replaces the store's fuel", %{module: module} do
      instance = Instance.new!(module, %{}, fuel: 10)
      assert {:error, %Error{kind: :out_of_fuel}} = Instance.call(instance, "count", [100])

      assert {:ok, [100]} = Instance.call(instance, "count", [100], fuel: 10_000)
      assert {:ok, left} = Store.fuel(instance.store)
      assert left < 10_000 and left > 0
    end

    test "an infinite loop runs out of fuel; the instance stays usable", %{module: module} do
      instance = Instance.new!(module)

      assert {:error, %Error{kind: :out_of_fuel, trap: :out_of_fuel, message: msg}} =
               Instance.call(instance, "spin", [], fuel: 10_000)

      assert msg =~ "fuel"
      assert {:ok, 0} = Store.fuel(instance.store)

      # with no fuel left, even a short call fails
      assert {:error, %Error{kind: :out_of_fuel}} = Instance.call(instance, "count", [1])

      assert :ok = Store.set_fuel(instance.store, 10_000)
      assert {:ok, 10_000} = Store.fuel(instance.store)
      assert {:ok, [5]} = Instance.call(instance, "count", [5])
    end

    test "fuel: 0 stops a call at once", %{module: module} do
      instance = Instance.new!(module)
      assert {:error, %Error{kind: :out_of_fuel}} = Instance.call(instance, "count", [1], fuel: 0)
    end

    test "fuel and timeout together: whichever comes first", %{module: module} do
      instance = Instance.new!(module)

      assert {:error, %Error{kind: :out_of_fuel}} =
               Instance.call(instance, "spin", [], fuel: 1_000, timeout: 60_000)

      assert {:error, %Error{kind: :timeout}} =
               Instance.call(instance, "spin", [], fuel: (1 <<< 64) - 1, timeout: 20)
    end

    test "fuel functions on an engine without fuel are :argument errors" do
      store = Store.new!()
      assert {:error, %Error{kind: :argument, message: msg}} = Store.fuel(store)
      assert msg =~ "consume_fuel"
      assert {:error, %Error{kind: :argument}} = Store.set_fuel(store, 10)
    end

    test "set_fuel/2 with a value too large for u64 is an :argument error, not a raise",
         %{engine: engine} do
      assert {:error, %Error{kind: :argument}} = Store.set_fuel(Store.new!(engine), 1 <<< 64)
    end
  end

  describe "one call at a time" do
    setup do
      instance = instance!(@busy_wat)
      {:ok, memory} = Instance.memory(instance, "mem")
      {:ok, global} = Instance.global(instance, "g")
      %{instance: instance, memory: memory, global: global}
    end

    test "while a call runs, other processes get :busy (wait: false), then the store answers again",
         %{instance: instance, memory: memory, global: global} do
      {:ok, answer} = Instance.func(instance, "answer")
      runner = Task.async(fn -> Instance.call(instance, "spin", [], timeout: 2_000) end)
      assert await_busy(instance.store)

      assert {:error, %Error{kind: :busy, message: msg}} =
               Instance.call(instance, "answer", [], wait: false)

      assert msg =~ "one call at a time"

      assert {:error, %Error{kind: :busy}} = Wasmbeam.Func.call(answer, [], wait: false)
      assert {:error, %Error{kind: :busy}} = Memory.read(memory, 0, 4)
      assert {:error, %Error{kind: :busy}} = Memory.write(memory, 0, "abcd")
      assert {:error, %Error{kind: :busy}} = Memory.size(memory)
      assert {:error, %Error{kind: :busy}} = Memory.grow(memory, 1)
      assert {:error, %Error{kind: :busy}} = Global.get(global)
      assert {:error, %Error{kind: :busy}} = Global.set(global, 1)
      assert {:error, %Error{kind: :busy}} = Instance.export(instance, "mem")
      assert {:error, %Error{kind: :busy}} = Instance.func(instance, "spin")
      assert inspect(memory) == "#Wasmbeam.Memory<mem: busy>"

      # instantiating into the busy store is refused as well
      assert {:error, %Error{kind: :busy}} =
               Instance.new(Module.compile!("(module)"), %{}, store: instance.store, wait: false)

      # the exports list needs no store
      assert [{"mem", _} | _] = Instance.exports(instance)

      assert {:error, %Error{kind: :timeout}} = Task.await(runner, 10_000)
      assert {:ok, [42]} = Instance.call(instance, "answer", [])
      assert {:ok, <<0, 0, 0, 0>>} = Memory.read(memory, 0, 4)
    end

    test "by default a call waits for the running one and then runs: calls are serialized",
         %{instance: instance} do
      runner = Task.async(fn -> Instance.call(instance, "spin", [], timeout: 300) end)
      assert await_busy(instance.store)

      waiters = for _ <- 1..5, do: Task.async(fn -> Instance.call(instance, "answer", []) end)

      assert {:error, %Error{kind: :timeout}} = Task.await(runner, 10_000)
      assert Enum.map(waiters, &Task.await(&1, 10_000)) == List.duplicate({:ok, [42]}, 5)
    end

    test "a waiting call gives up with :busy when its timeout passes first", %{instance: instance} do
      runner = Task.async(fn -> Instance.call(instance, "spin", [], timeout: 1_000) end)
      assert await_busy(instance.store)

      assert {:error, %Error{kind: :busy}} = Instance.call(instance, "answer", [], timeout: 50)
      assert {:error, %Error{kind: :timeout}} = Task.await(runner, 10_000)
      assert {:ok, [42]} = Instance.call(instance, "answer", [])
    end

    test "many processes calling one store get answers or :busy, never anything else" do
      instance = instance!(~S[(module
          (func (export "answer") (result i32) i32.const 42)
          (func (export "work") (result i32) (local i32)
            (loop
              (local.set 0 (i32.add (local.get 0) (i32.const 1)))
              (br_if 0 (i32.lt_u (local.get 0) (i32.const 200000))))
            local.get 0))])

      results =
        1..6
        |> Enum.map(fn n ->
          Task.async(fn ->
            for k <- 1..100 do
              name = if rem(n + k, 2) == 0, do: "answer", else: "work"
              {name, Instance.call(instance, name, [])}
            end
          end)
        end)
        |> Enum.flat_map(&Task.await(&1, 60_000))

      assert length(results) == 600

      for {name, result} <- results do
        case result do
          {:ok, value} -> assert value == if(name == "answer", do: [42], else: [200_000])
          {:error, error} -> assert %Error{kind: :busy} = error
        end
      end

      assert Enum.any?(results, &match?({_, {:ok, _}}, &1))
      assert {:ok, [42]} = Instance.call(instance, "answer", [])
    end

    test "other stores run while one is busy", %{instance: instance} do
      runner = Task.async(fn -> Instance.call(instance, "spin", [], timeout: 2_000) end)
      assert await_busy(instance.store)

      other = instance!(@busy_wat)
      assert {:ok, [42]} = Instance.call(other, "answer", [])

      # another instance of the same module in a new store
      assert {:ok, [42]} = instance.module |> Instance.new!() |> Instance.call("answer", [])
      assert {:error, %Error{kind: :timeout}} = Task.await(runner, 10_000)
    end

    test "the death of the calling process frees the store", %{instance: instance} do
      pid = spawn(fn -> Instance.call(instance, "spin", []) end)
      assert await_busy(instance.store)
      assert {:error, %Error{kind: :busy}} = Instance.call(instance, "answer", [], wait: false)

      ref = Process.monitor(pid)
      Process.exit(pid, :kill)
      assert_receive {:DOWN, ^ref, :process, ^pid, :killed}, 5_000

      assert {:ok, [42]} =
               eventually(fn ->
                 case Instance.call(instance, "answer", []) do
                   {:ok, _} = ok -> ok
                   {:error, %Error{kind: :busy}} -> nil
                 end
               end)

      # and a long call can run again, with its own timeout
      assert {:error, %Error{kind: :timeout}} = Instance.call(instance, "spin", [], timeout: 20)
    end

    test "a killed call that had a timeout also frees the store", %{instance: instance} do
      pid = spawn(fn -> Instance.call(instance, "spin", [], timeout: 60_000) end)
      assert await_busy(instance.store)
      Process.exit(pid, :kill)

      assert {:ok, [42]} =
               eventually(fn ->
                 case Instance.call(instance, "answer", []) do
                   {:ok, _} = ok -> ok
                   {:error, %Error{kind: :busy}} -> nil
                 end
               end)
    end

    test "a killed start function frees the store" do
      store = Store.new!()
      module = Module.compile!(~S[(module (func $s (loop br 0)) (start $s))])
      pid = spawn(fn -> Instance.new(module, %{}, store: store) end)
      assert await_busy(store)
      Process.exit(pid, :kill)

      answer = Module.compile!(~S[(module (func (export "f") (result i32) i32.const 5))])

      assert {:ok, instance} =
               eventually(fn ->
                 case Instance.new(answer, %{}, store: store) do
                   {:ok, _} = ok -> ok
                   {:error, %Error{kind: :busy}} -> nil
                 end
               end)

      assert {:ok, [5]} = Instance.call(instance, "f", [])
    end
  end
end
