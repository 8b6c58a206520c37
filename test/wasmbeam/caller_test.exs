defmodule Wasmbeam.CallerTest do
  # The caller handle a host function's handler gets: memory, globals, fuel,
  # nested calls into the same instance, and what happens to it afterwards.
  use ExUnit.Case, async: true

  import Bitwise, only: [<<<: 2]
  import Wasmbeam.Test.Wat

  alias Wasmbeam.{Caller, Engine, Error, Instance, Module}

  @wat ~S[(module
    (import "env" "h" (func $h (param i32) (result i32)))
    (memory (export "memory") 1)
    (memory (export "mem2") 1)
    (global $counter (export "counter") (mut i32) (i32.const 0))
    (global (export "k") i64 (i64.const 99))
    (global (export "g64") (mut i64) (i64.const 0))
    (data (memory 0) (i32.const 16) "hello from wasm")
    (data (memory 1) (i32.const 0) "second memory")
    (func $double (export "double") (param i32) (result i32) local.get 0 i32.const 2 i32.mul)
    (func (export "run") (param i32) (result i32) local.get 0 call $h)
    (func (export "load") (param i32) (result i32) local.get 0 i32.load)
    (func (export "run_then_load") (param i32) (result i32)
      local.get 0 call $h drop local.get 0 i32.load)
    (func (export "run_then_counter") (param i32) (result i32)
      local.get 0 call $h drop global.get $counter)
    (func (export "store") (param i32 i32) local.get 0 local.get 1 i32.store)
    (func (export "boom") (result i32) unreachable)
    (func (export "spin") (result i32) (loop br 0) i32.const 0)
    (func (export "level") (param i32) (result i32) local.get 0 call $h)
    (func $step (export "step") (result i32)
      global.get $counter i32.const 1 i32.add global.set $counter
      global.get $counter i32.const 50 i32.ge_u
      if (result i32) global.get $counter else i32.const 0 call $h end))]

  defp with_handler(fun, options \\ []),
    do: instance!(@wat, %{"env" => %{"h" => {:fn, [:i32], [:i32], fun}}}, options)

  describe "memory" do
    test "read and write from a handler; the guest sees the write at once" do
      handler = fn caller, ptr ->
        {:ok, text} = Caller.read(caller, 16, 15)
        send(self(), {:read, text})
        :ok = Caller.write(caller, ptr, <<1, 2, 3, 4>>)
        0
      end

      instance = with_handler(handler)
      assert {:ok, [0x04030201]} = Instance.call(instance, "run_then_load", [100])
      assert_received {:read, "hello from wasm"}
      # and it stays written
      assert {:ok, [0x04030201]} = Instance.call(instance, "load", [100])
    end

    test "the handler sees what the guest wrote earlier in the same call" do
      instance =
        with_handler(fn caller, ptr ->
          {:ok, <<value::little-32>>} = Caller.read(caller, ptr, 4)
          value
        end)

      assert {:ok, []} = Instance.call(instance, "store", [200, 123_456])
      assert {:ok, [123_456]} = Instance.call(instance, "run", [200])
    end

    test "memory size, and a memory by name" do
      instance =
        with_handler(fn caller, _ ->
          send(self(), {:sizes, Caller.memory_size(caller), Caller.memory_size(caller, "mem2")})
          send(self(), {:mem2, Caller.read(caller, 0, 13, "mem2")})
          :ok = Caller.write(caller, 0, "SECOND", "mem2")
          send(self(), {:mem2_after, Caller.read(caller, 0, 13, "mem2")})
          send(self(), {:memory, Caller.read(caller, 0, 6)})
          0
        end)

      assert {:ok, [0]} = Instance.call(instance, "run", [0])
      assert_received {:sizes, {:ok, 65_536}, {:ok, 65_536}}
      assert_received {:mem2, {:ok, "second memory"}}
      assert_received {:mem2_after, {:ok, "SECOND memory"}}
      # the default memory was not touched
      assert_received {:memory, {:ok, <<0, 0, 0, 0, 0, 0>>}}
    end

    test "out-of-bounds access is an error the handler can handle" do
      instance =
        with_handler(fn caller, _ ->
          send(
            self(),
            {:oob,
             [
               Caller.read(caller, 65_534, 4),
               Caller.read(caller, 65_537, 0),
               Caller.read(caller, 0xFFFF_FFFF_FFFF_FFFF, 2),
               Caller.write(caller, 65_535, <<1, 2>>),
               Caller.read(caller, 0, 65_537)
             ]}
          )

          # the caller still works after the errors
          {:ok, "hello"} = Caller.read(caller, 16, 5)
          # edge of memory is fine
          {:ok, <<0, 0>>} = Caller.read(caller, 65_534, 2)
          {:ok, ""} = Caller.read(caller, 65_536, 0)
          7
        end)

      assert {:ok, [7]} = Instance.call(instance, "run", [0])
      assert_received {:oob, errors}
      assert length(errors) == 5

      for error <- errors do
        assert {:error, %Error{kind: :argument, message: message}} = error
        assert message =~ "out of bounds"
      end

      # nothing was written by the refused write
      assert {:ok, [0]} = Instance.call(instance, "load", [65_532])
    end

    test "an unknown memory name is :not_found" do
      instance =
        with_handler(fn caller, _ ->
          send(self(), {:errors,
           [
             Caller.read(caller, 0, 1, "nope"),
             Caller.write(caller, 0, "x", "nope"),
             Caller.memory_size(caller, "nope"),
             # an export that is not a memory
             Caller.read(caller, 0, 1, "counter"),
             Caller.read(caller, 0, 1, "double")
           ]})

          1
        end)

      assert {:ok, [1]} = Instance.call(instance, "run", [0])
      assert_received {:errors, errors}

      for error <- errors do
        assert {:error, %Error{kind: :not_found}} = error
      end
    end

    test "a guest without an exported memory: :not_found, not a crash" do
      wat = ~S[(module (import "env" "h" (func $h (result i32))) (memory 1)
        (func (export "run") (result i32) call $h))]

      handler = fn caller ->
        send(self(), {:read, Caller.read(caller, 0, 1)})
        3
      end

      instance = instance!(wat, %{"env" => %{"h" => {:fn, [], [:i32], handler}}})
      assert {:ok, [3]} = Instance.call(instance, "run", [])
      assert_received {:read, {:error, %Error{kind: :not_found}}}
    end
  end

  describe "globals" do
    test "get and set through the caller; the guest sees the new value" do
      instance =
        with_handler(fn caller, x ->
          send(self(), {:before, Caller.global(caller, "counter"), Caller.global(caller, "k")})
          :ok = Caller.set_global(caller, "counter", x)
          :ok = Caller.set_global(caller, "g64", 0xFFFF_FFFF_FFFF_FFFF)
          send(self(), {:after, Caller.global(caller, "counter"), Caller.global(caller, "g64")})
          0
        end)

      assert {:ok, [5]} = Instance.call(instance, "run_then_counter", [5])
      assert_received {:before, {:ok, 0}, {:ok, 99}}
      assert_received {:after, {:ok, 5}, {:ok, -1}}

      {:ok, counter} = Instance.global(instance, "counter")
      assert {:ok, 5} = Wasmbeam.Global.get(counter)
    end

    test "errors: immutable global, unknown global, wrong type" do
      instance =
        with_handler(fn caller, _ ->
          send(
            self(),
            {:errors,
             [
               Caller.set_global(caller, "k", 1),
               Caller.global(caller, "nope"),
               Caller.set_global(caller, "nope", 1),
               Caller.global(caller, "memory"),
               Caller.set_global(caller, "counter", "not a number"),
               Caller.set_global(caller, "counter", 1 <<< 40)
             ]}
          )

          Caller.global(caller, "k") |> elem(1)
        end)

      assert {:ok, [99]} = Instance.call(instance, "run", [0])
      assert_received {:errors, [immutable, unknown, unknown_set, not_global, bad, too_big]}
      assert {:error, %Error{kind: :argument, message: message}} = immutable
      assert message =~ "immutable"
      assert {:error, %Error{kind: :not_found}} = unknown
      assert {:error, %Error{kind: :not_found}} = unknown_set
      assert {:error, %Error{kind: :not_found}} = not_global
      assert {:error, %Error{kind: :type}} = bad
      assert {:error, %Error{kind: :type}} = too_big

      # nothing changed
      {:ok, counter} = Instance.global(instance, "counter")
      assert {:ok, 0} = Wasmbeam.Global.get(counter)
    end
  end

  describe "fuel" do
    @fuel_wat ~S[(module
      (import "env" "h" (func $h (param i32) (result i32)))
      (func $burn (param i32) (loop local.get 0 i32.const 1 i32.sub local.tee 0 br_if 0))
      (func (export "double") (param i32) (result i32) local.get 0 i32.const 2 i32.mul)
      (func (export "burn") (param i32) (result i32) local.get 0 call $burn i32.const 0)
      (func (export "run") (param i32) (result i32)
        i32.const 100 call $burn local.get 0 call $h))]

    test "a handler reads the fuel left on a fuel engine" do
      engine = Engine.new!(consume_fuel: true)
      module = Module.compile!(engine, @fuel_wat)

      handler = fn caller, _ ->
        {:ok, before} = Caller.fuel(caller)
        {:ok, [0]} = Caller.call(caller, "burn", [1_000])
        {:ok, later} = Caller.fuel(caller)
        send(self(), {:fuel, before, later})
        0
      end

      instance =
        Instance.new!(module, %{"env" => %{"h" => {:fn, [:i32], [:i32], handler}}},
          fuel: 1_000_000
        )

      assert {:ok, [0]} = Instance.call(instance, "run", [0])
      assert_received {:fuel, before, later}
      # the guest burnt some before the host call, the nested call burnt more
      assert before < 1_000_000
      assert later < before
      assert before - later >= 1_000

      # a per-call budget is what the caller sees
      assert {:ok, [0]} = Instance.call(instance, "run", [0], fuel: 50_000)
      assert_received {:fuel, before, later}
      assert before < 50_000
      assert later < before
    end

    test "a nested call that runs out of fuel is an :out_of_fuel error for the handler" do
      engine = Engine.new!(consume_fuel: true)
      module = Module.compile!(engine, @fuel_wat)

      handler = fn caller, _ ->
        send(self(), {:nested, Caller.call(caller, "burn", [1_000_000])})
        1
      end

      instance = Instance.new!(module, %{"env" => %{"h" => {:fn, [:i32], [:i32], handler}}})
      # Fuel used up through the caller is used up for the whole call, as
      # if the guest had made the nested call itself.
      assert {:error, %Error{kind: :out_of_fuel}} =
               Instance.call(instance, "run", [0], fuel: 10_000)

      assert_received {:nested, {:error, %Error{kind: :out_of_fuel}}}
      assert {:ok, 0} = Wasmbeam.Store.fuel(instance.store)
      assert {:ok, [84]} = Instance.call(instance, "double", [42], fuel: 10_000)
    end

    test "without fuel metering, fuel is an :argument error" do
      instance =
        with_handler(fn caller, _ ->
          send(self(), {:fuel, Caller.fuel(caller)})
          0
        end)

      assert {:ok, [0]} = Instance.call(instance, "run", [0])
      assert_received {:fuel, {:error, %Error{kind: :argument}}}
    end
  end

  describe "nested calls into the same instance" do
    test "a handler calls an export of its own instance" do
      instance =
        with_handler(fn caller, x ->
          {:ok, [doubled]} = Caller.call(caller, "double", [x])
          doubled + 1
        end)

      assert {:ok, [43]} = Instance.call(instance, "run", [21])
    end

    test "errors of a nested call come back to the handler" do
      instance =
        with_handler(fn caller, _ ->
          send(
            self(),
            {:errors,
             [
               Caller.call(caller, "nope", []),
               Caller.call(caller, "double", []),
               Caller.call(caller, "double", ["x"]),
               Caller.call(caller, "memory", [])
             ]}
          )

          5
        end)

      assert {:ok, [5]} = Instance.call(instance, "run", [0])
      assert_received {:errors, [unknown, arity, type, not_func]}
      assert {:error, %Error{kind: :not_found}} = unknown
      assert {:error, %Error{kind: :arity}} = arity
      assert {:error, %Error{kind: :type}} = type
      assert {:error, %Error{kind: :not_found}} = not_func
    end

    test "nested 4 levels deep: guest -> host -> guest -> host -> ..." do
      instance =
        with_handler(fn caller, n ->
          Process.put(:levels, [n | Process.get(:levels, [])])
          # each level writes its number where the next one can read it
          :ok = Caller.write(caller, 1000 + n, <<n>>)

          if n == 0 do
            {:ok, bytes} = Caller.read(caller, 1000, 4)
            send(self(), {:innermost_saw, bytes})
            1000
          else
            {:ok, [r]} = Caller.call(caller, "level", [n - 1])
            # after the nested call returned, this level's caller works again
            {:ok, <<^n>>} = Caller.read(caller, 1000 + n, 1)
            r + n
          end
        end)

      assert {:ok, [1006]} = Instance.call(instance, "level", [3])
      assert Process.get(:levels) == [0, 1, 2, 3]
      assert_received {:innermost_saw, <<0, 1, 2, 3>>}
    end

    test "recursion 50 deep (the guest counts in a global) without deadlock" do
      instance =
        with_handler(fn caller, _ ->
          depth = Process.get(:depth, 0) + 1
          Process.put(:depth, depth)
          Process.put(:max_depth, max(depth, Process.get(:max_depth, 0)))
          {:ok, [r]} = Caller.call(caller, "step", [])
          Process.put(:depth, depth - 1)
          r
        end)

      assert {:ok, [50]} = Instance.call(instance, "step", [])
      assert Process.get(:max_depth) == 49
      {:ok, counter} = Instance.global(instance, "counter")
      assert {:ok, 50} = Wasmbeam.Global.get(counter)

      # and again from where it stopped: one more step, no host call
      assert {:ok, [51]} = Instance.call(instance, "step", [])
    end

    test "calling the instance directly, not through the caller, is :busy, not a deadlock" do
      instance =
        with_handler(fn _caller, x ->
          send(self(), {:direct, Instance.call(Process.get(:instance), "double", [x])})
          x
        end)

      Process.put(:instance, instance)
      assert {:ok, [3]} = Instance.call(instance, "run", [3])
      assert_received {:direct, {:error, %Error{kind: :busy}}}
    end

    test "a nested call that traps: the handler gets the trap and may still answer" do
      instance =
        with_handler(fn caller, x ->
          send(self(), {:nested, Caller.call(caller, "boom", [])})
          # the instance works inside the same host call after the trap
          {:ok, [d]} = Caller.call(caller, "double", [x])
          d
        end)

      assert {:ok, [10]} = Instance.call(instance, "run", [5])
      assert_received {:nested, {:error, %Error{kind: :trap, trap: :unreachable}}}
      assert {:ok, [12]} = Instance.call(instance, "run", [6])
    end

    test "a nested call that traps, passed on by the handler, traps the outer call" do
      instance =
        with_handler(fn caller, _ ->
          {:ok, _} = Caller.call(caller, "boom", [])
          0
        end)

      assert {:error, %Error{kind: :trap, message: message}} = Instance.call(instance, "run", [5])
      assert message =~ "host function env.h"
      assert {:ok, [14]} = Instance.call(instance, "double", [7])
    end

    # Even when the handler swallows the nested :timeout and the guest
    # returns without reaching another deadline check, the outer call is
    # past its deadline and must say so.
    test "a nested call that loops is stopped by the outer call's timeout" do
      instance =
        with_handler(fn caller, _ ->
          result = Caller.call(caller, "spin", [])
          send(self(), {:nested, result})
          0
        end)

      assert {:error, %Error{kind: :timeout}} = Instance.call(instance, "run", [0], timeout: 100)
      assert_received {:nested, {:error, %Error{kind: :timeout}}}
      assert {:ok, [4]} = Instance.call(instance, "double", [2])
    end

    test "a nested timeout passed on by the handler times the outer call out" do
      instance =
        with_handler(fn caller, _ ->
          {:ok, _} = Caller.call(caller, "spin", [])
          0
        end)

      assert {:error, %Error{kind: :timeout}} = Instance.call(instance, "run", [0], timeout: 100)
      assert {:ok, [4]} = Instance.call(instance, "double", [2])
    end
  end

  describe "a handler process uses the caller" do
    defmodule Server do
      use GenServer

      def start, do: GenServer.start(__MODULE__, nil)

      @impl true
      def init(nil), do: {:ok, nil}

      @impl true
      def handle_call({:wasmbeam_host_call, "env.h", caller, [ptr]}, _from, state) do
        {:ok, text} = Caller.read(caller, ptr, 5)
        :ok = Caller.write(caller, ptr, String.upcase(text))
        {:ok, [doubled]} = Caller.call(caller, "double", [ptr])
        {:reply, [doubled], state}
      end
    end

    test "memory and nested calls from the handler process" do
      {:ok, server} = Server.start()
      instance = with_handler({:process, server})

      assert {:ok, [32]} = Instance.call(instance, "run", [16])
      {:ok, memory} = Instance.memory(instance, "memory")
      assert {:ok, "HELLO from wasm"} = Wasmbeam.Memory.read(memory, 16, 15)
      GenServer.stop(server)
    end
  end

  describe "a handler process that fails while it drives a nested call" do
    # The handler process makes a nested call through the caller; while it
    # is inside that call it stops answering (GenServer.call timeout) or
    # dies. The outer call must end with a trap naming the import, and the
    # instance must be usable again.
    @nested_wat ~S[(module
      (import "env" "h" (func $h (param i32) (result i32)))
      (import "env" "wait" (func $wait (result i32)))
      (import "env" "signal" (func $signal))
      (func (export "run") (param i32) (result i32) local.get 0 call $h)
      (func (export "inner_wait") (result i32) call $wait)
      (func (export "inner_spin") (result i32) call $signal (loop br 0) i32.const 0)
      (func (export "plain") (param i32) (result i32) local.get 0 i32.const 1 i32.add))]

    # A handler process (a bare process speaking the GenServer protocol)
    # that makes one nested call to `export` and reports its result.
    defp nested_handler_process(test, export) do
      spawn(fn ->
        receive do
          {:"$gen_call", from, {:wasmbeam_host_call, "env.h", caller, [_]}} ->
            send(test, {:nested_result, Caller.call(caller, export, [])})
            GenServer.reply(from, [1])
        end
      end)
    end

    # In-process imports: they run in whichever process drives the nested
    # call, here the handler process.
    defp nested_instance(test, handler_spec) do
      imports = %{
        "env" => %{
          "h" => {:fn, [:i32], [:i32], handler_spec},
          "wait" =>
            {:fn, [], [:i32],
             fn _c ->
               send(test, {:waiting, self()})

               receive do
                 :go -> 7
               end
             end},
          "signal" =>
            {:fn, [], [],
             fn _c ->
               send(test, {:spinning, self()})
               :ok
             end}
        }
      }

      instance!(@nested_wat, imports)
    end

    # The task's result, or :no_answer (and the task killed, which cancels
    # its call) if it has none after `ms`.
    defp result_within(task, ms) do
      case Task.yield(task, ms) || Task.shutdown(task, :brutal_kill) do
        {:ok, result} -> result
        _ -> :no_answer
      end
    end

    defp usable?(instance),
      do: eventually(fn -> Instance.call(instance, "plain", [1]) == {:ok, [2]} end, 2_000)

    test "it times out while its nested call waits in a host call" do
      test = self()
      server = nested_handler_process(test, "inner_wait")
      instance = nested_instance(test, {:process, server, timeout: 50})

      result = Instance.call(instance, "run", [0])
      assert_received {:waiting, waiter}
      send(waiter, :go)
      assert_receive {:nested_result, nested}, 2_000

      # the handler process did not answer in time: a trap for the caller...
      assert {:error, %Error{kind: :trap, message: message}} = result
      assert message =~ "host function env.h"
      assert message =~ "did not answer"
      # ...and its nested call, made for an answer nobody waits for any
      # more, does not complete as if nothing had happened
      assert {:error, %Error{}} = nested
      assert usable?(instance)
    end

    test "it dies while its nested call waits in a host call" do
      test = self()
      server = nested_handler_process(test, "inner_wait")
      instance = nested_instance(test, {:process, server})

      task = Task.async(fn -> Instance.call(instance, "run", [0]) end)
      assert_receive {:waiting, ^server}, 5_000
      Process.exit(server, :kill)

      result = result_within(task, 3_000)

      assert {:error, %Error{kind: :trap, message: message}} = result
      assert message =~ "host function env.h"
      assert message =~ "killed"
      assert usable?(instance)
    end

    test "it dies while its nested call spins" do
      test = self()
      server = nested_handler_process(test, "inner_spin")
      instance = nested_instance(test, {:process, server})

      task = Task.async(fn -> Instance.call(instance, "run", [0]) end)
      assert_receive {:spinning, ^server}, 5_000
      Process.exit(server, :kill)

      # (without an answer, the caller would drive the abandoned nested
      # call forever)
      result = result_within(task, 3_000)

      assert {:error, %Error{kind: :trap, message: message}} = result
      assert message =~ "host function env.h"
      assert usable?(instance)
    end
  end

  describe "a caller used by another process during its host call" do
    test "is refused with an :argument error; the owner's use works" do
      parent = self()

      instance =
        with_handler(fn caller, x ->
          task =
            Task.async(fn ->
              {Caller.read(caller, 0, 1), Caller.call(caller, "double", [2]),
               Caller.memory_size(caller)}
            end)

          send(parent, {:other, Task.await(task)})
          {:ok, [doubled]} = Caller.call(caller, "double", [x])
          doubled
        end)

      assert {:ok, [6]} = Instance.call(instance, "run", [3])
      assert_received {:other, {read, call, size}}

      for result <- [read, call, size] do
        assert {:error, %Error{kind: :argument, message: message}} = result
        assert message =~ "only by the process running its host function"
      end
    end
  end

  describe "a caller after its host call" do
    test "used after the handler returned: an error, not a crash" do
      instance =
        with_handler(fn caller, x ->
          Process.put(:saved_caller, caller)
          x
        end)

      assert {:ok, [1]} = Instance.call(instance, "run", [1])
      stale = Process.get(:saved_caller)
      assert %Caller{} = stale

      assert {:error, %Error{}} = Caller.read(stale, 0, 1)
      assert {:error, %Error{}} = Caller.write(stale, 0, "x")
      assert {:error, %Error{}} = Caller.memory_size(stale)
      assert {:error, %Error{}} = Caller.global(stale, "counter")
      assert {:error, %Error{}} = Caller.set_global(stale, "counter", 1)
      assert {:error, %Error{}} = Caller.fuel(stale)
      assert {:error, %Error{}} = Caller.call(stale, "double", [1])

      # the refused write did not happen and the instance works
      assert {:ok, [0]} = Instance.call(instance, "load", [0])
      assert {:ok, [2]} = Instance.call(instance, "run", [2])
    end

    test "used from another process after the handler returned" do
      {:ok, agent} = Agent.start_link(fn -> nil end)

      instance =
        with_handler(fn caller, x ->
          Agent.update(agent, fn _ -> caller end)
          x
        end)

      assert {:ok, [1]} = Instance.call(instance, "run", [1])

      results =
        Agent.get(agent, fn caller ->
          [
            Caller.read(caller, 0, 1),
            Caller.call(caller, "double", [2]),
            Caller.global(caller, "k")
          ]
        end)

      for result <- results, do: assert({:error, %Error{}} = result)
      assert {:ok, [3]} = Instance.call(instance, "run", [3])
    end

    test "an old caller used during a later host call is refused" do
      instance =
        with_handler(fn caller, x ->
          case Process.get(:saved_caller) do
            nil ->
              Process.put(:saved_caller, caller)

            old ->
              send(self(), {:old, Caller.read(old, 16, 5), Caller.call(old, "double", [1])})
              send(self(), {:new, Caller.read(caller, 16, 5)})
          end

          x
        end)

      assert {:ok, [1]} = Instance.call(instance, "run", [1])
      assert {:ok, [2]} = Instance.call(instance, "run", [2])
      assert_received {:old, {:error, %Error{}}, {:error, %Error{}}}
      assert_received {:new, {:ok, "hello"}}
    end

    test "an outer caller used inside a nested host call is refused; it works again afterwards" do
      instance =
        with_handler(fn caller, n ->
          if n == 1 do
            Process.put(:outer_caller, caller)
            {:ok, [r]} = Caller.call(caller, "run", [0])
            send(self(), {:outer_again, Caller.read(caller, 16, 5)})
            r
          else
            outer = Process.get(:outer_caller)

            send(
              self(),
              {:outer_inside, Caller.read(outer, 16, 5), Caller.call(outer, "double", [1])}
            )

            42
          end
        end)

      assert {:ok, [42]} = Instance.call(instance, "run", [1])
      assert_received {:outer_inside, {:error, %Error{}}, {:error, %Error{}}}
      assert_received {:outer_again, {:ok, "hello"}}
    end

    test "inspect" do
      instance =
        with_handler(fn caller, x ->
          send(self(), {:inspected, inspect(caller)})
          x
        end)

      assert {:ok, [1]} = Instance.call(instance, "run", [1])
      assert_received {:inspected, "#Wasmbeam.Caller<" <> _}
    end
  end
end
