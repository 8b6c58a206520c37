defmodule Wasmbeam.Instance.ServerTest do
  use ExUnit.Case, async: true

  alias Wasmbeam.{Error, Instance, Module}
  alias Wasmbeam.Instance.Server

  doctest Wasmbeam.Instance.Server

  @wat ~S"""
  (module
    (import "env" "hook" (func $hook (param i32) (result i32)))
    (global $n (mut i32) (i32.const 0))
    (func (export "next") (result i32)
      global.get $n i32.const 1 i32.add global.set $n global.get $n)
    (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
    (func (export "div") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_s)
    (func (export "hook") (param i32) (result i32) local.get 0 call $hook)
    (func (export "spin") (loop br 0)))
  """

  setup do
    %{module: Module.compile!(@wat)}
  end

  defp imports(hook \\ fn _caller, x -> x * 10 end),
    do: %{"env" => %{"hook" => {:fn, [:i32], [:i32], hook}}}

  defp start!(module, options \\ []) do
    start_supervised!({Instance, [module: module, imports: imports()] ++ options})
  end

  # Waits until the server reports what `fun` looks for.
  defp await_info(server, fun) do
    Wasmbeam.Test.Wat.eventually(fn ->
      {:ok, info} = Server.info(server)
      fun.(info)
    end)
  end

  describe "start" do
    test "starts, calls and keeps the instance's state between calls", %{module: module} do
      server = start!(module)
      assert Instance.call(server, "next", []) == {:ok, [1]}
      assert Instance.call(server, "next", []) == {:ok, [2]}
      assert Instance.call!(server, "add", [2, 3]) == [5]
    end

    test "compiles a module given as WAT text" do
      {:ok, pid} =
        Instance.start_link(module: ~S[(module (func (export "one") (result i32) i32.const 1))])

      assert Instance.call(pid, "one", []) == {:ok, [1]}
    end

    test "invalid options and failed instantiations are errors, and the caller lives",
         %{module: module} do
      assert {:error, %Error{kind: :argument}} = Instance.start_link([])
      assert {:error, %Error{kind: :argument}} = Instance.start_link(:nope)
      assert {:error, %Error{kind: :argument}} = Instance.start_link(module: module, bogus: 1)
      assert {:error, %Error{kind: :argument}} = Instance.start_link(module: 42)

      assert {:error, %Error{kind: :argument}} =
               Instance.start_link(module: module, max_queue: -1)

      assert {:error, %Error{kind: :parse}} = Instance.start_link(module: "(module")
      # missing import: the start fails with a link error, not an exit
      assert {:error, %Error{kind: :link}} = Instance.start_link(module: module)
      trapping = ~S[(module (func $s unreachable) (start $s))]
      assert {:error, %Error{kind: :trap}} = Instance.start_link(module: trapping)
      assert Process.alive?(self())
    end

    test "bad call arguments are errors", %{module: module} do
      server = start!(module)
      assert {:error, %Error{kind: :argument}} = Instance.call(server, :next, [])
      assert {:error, %Error{kind: :argument}} = Instance.call(server, "next", [], timeout: -1)
      assert {:error, %Error{kind: :not_found}} = Instance.call(server, "nope", [])
      assert {:error, %Error{kind: :arity}} = Instance.call(server, "add", [1])
      assert {:error, %Error{kind: :argument}} = Server.async_call(server, "add", :not_a_list)
      assert {:error, %Error{kind: :argument}} = Instance.call(%{}, "add", [1, 2])
      assert {:error, %Error{kind: :down}} = Instance.call({:no, :node}, "add", [1, 2])
      assert {:error, %Error{kind: :argument}} = Instance.call(42, "add", [1, 2])
    end
  end

  describe "names" do
    test "an atom", %{module: module} do
      start!(module, name: :instance_server_test_atom)
      assert Instance.call(:instance_server_test_atom, "add", [1, 1]) == {:ok, [2]}
    end

    test "a via tuple through a Registry", %{module: module} do
      start_supervised!({Registry, keys: :unique, name: __MODULE__.Registry})
      name = {:via, Registry, {__MODULE__.Registry, {:tenant, 7}}}
      pid = start!(module, name: name)
      assert [{^pid, _}] = Registry.lookup(__MODULE__.Registry, {:tenant, 7})
      assert Instance.call(name, "add", [1, 2]) == {:ok, [3]}
    end

    test "a global name", %{module: module} do
      name = {:global, {__MODULE__, make_ref()}}
      start!(module, name: name)
      assert Instance.call(name, "add", [2, 2]) == {:ok, [4]}
    end

    test "calling a name nobody has is a :down error" do
      assert {:error, %Error{kind: :down}} = Instance.call(:no_such_instance, "f", [])
      assert {:error, %Error{kind: :down}} = Instance.call({:global, :no_such}, "f", [])
      assert {:error, %Error{kind: :down}} = Server.info(:no_such_instance)
    end
  end

  describe "queued calls" do
    test "calls that arrive while one runs wait their turn, in order", %{module: module} do
      server = start!(module)
      {:ok, spin} = Server.async_call(server, "spin", [], timeout: 5_000)
      requests = for _ <- 1..3, do: elem(Server.async_call(server, "next", []), 1)

      # The process answers while its guest runs.
      assert await_info(server, &(&1.running and &1.queued == 3))

      Server.cancel(spin)
      assert {:error, %Error{kind: :cancelled}} = Server.await(spin)
      assert Enum.map(requests, &Server.await/1) == [{:ok, [1]}, {:ok, [2]}, {:ok, [3]}]
    end

    test "a full queue refuses with :overloaded", %{module: module} do
      server = start!(module, max_queue: 1)
      {:ok, spin} = Server.async_call(server, "spin", [], timeout: 5_000)
      {:ok, queued} = Server.async_call(server, "add", [1, 2])
      assert await_info(server, &(&1.queued == 1))

      assert {:error, %Error{kind: :overloaded}} = Instance.call(server, "add", [1, 2])

      Server.cancel(spin)
      assert Server.await(queued) == {:ok, [3]}
    end

    test "the timeout counts the time spent in the queue", %{module: module} do
      server = start!(module)
      {:ok, spin} = Server.async_call(server, "spin", [], timeout: 5_000)

      assert {:error, %Error{kind: :timeout, message: message}} =
               Instance.call(server, "add", [1, 2], timeout: 20)

      assert message =~ "queue"
      # It was answered at its own deadline, while the spin still runs.
      assert {:ok, %{running: true, queued: 0}} = Server.info(server)
      Server.cancel(spin)
      assert {:error, %Error{kind: :cancelled}} = Server.await(spin)
      assert Instance.call(server, "add", [1, 2]) == {:ok, [3]}
    end
  end

  describe "cancel" do
    test "cancels a running call; the instance stays usable with its state", %{module: module} do
      server = start!(module)
      assert Instance.call(server, "next", []) == {:ok, [1]}
      {:ok, spin} = Server.async_call(server, "spin", [])
      assert await_info(server, & &1.running)

      assert Server.cancel(spin) == :ok
      assert {:error, %Error{kind: :cancelled}} = Server.await(spin)
      assert Instance.call(server, "next", []) == {:ok, [2]}
    end

    test "cancels a queued call without running it", %{module: module} do
      server = start!(module)
      {:ok, spin} = Server.async_call(server, "spin", [], timeout: 5_000)
      {:ok, queued} = Server.async_call(server, "next", [])
      Server.cancel(queued)
      assert {:error, %Error{kind: :cancelled}} = Server.await(queued)

      Server.cancel(spin)
      Server.await(spin)
      # The queued call never ran: the counter starts at 1.
      assert Instance.call(server, "next", []) == {:ok, [1]}
    end

    test "an await that gives up cancels the call", %{module: module} do
      server = start!(module)
      {:ok, spin} = Server.async_call(server, "spin", [])
      assert {:error, %Error{kind: :timeout}} = Server.await(spin, 20)
      assert await_info(server, &(not &1.running))
      assert Instance.call(server, "add", [1, 2]) == {:ok, [3]}
    end

    test "cancelling a finished call does nothing", %{module: module} do
      server = start!(module)
      {:ok, request} = Server.async_call(server, "add", [1, 2])
      assert Server.await(request) == {:ok, [3]}
      assert Server.cancel(request) == :ok
      assert Instance.call(server, "add", [2, 2]) == {:ok, [4]}
    end
  end

  describe "caller death" do
    test "cancels the dead caller's running call", %{module: module} do
      server = start!(module)
      caller = spawn(fn -> Instance.call(server, "spin", []) end)
      assert await_info(server, & &1.running)

      Process.exit(caller, :kill)
      assert await_info(server, &(not &1.running))
      assert Instance.call(server, "add", [1, 2]) == {:ok, [3]}
    end

    test "drops the dead caller's queued calls", %{module: module} do
      server = start!(module)
      {:ok, spin} = Server.async_call(server, "spin", [], timeout: 5_000)
      caller = spawn(fn -> Instance.call(server, "next", []) end)
      assert await_info(server, &(&1.queued == 1))

      Process.exit(caller, :kill)
      assert await_info(server, &(&1.queued == 0))
      Server.cancel(spin)
      Server.await(spin)
      assert Instance.call(server, "next", []) == {:ok, [1]}
    end
  end

  describe "failures" do
    test "a trap is returned; the process and its state survive", %{module: module} do
      server = start!(module)
      assert Instance.call(server, "next", []) == {:ok, [1]}

      assert {:error, %Error{kind: :trap, trap: :integer_division_by_zero}} =
               Instance.call(server, "div", [1, 0])

      assert Instance.call(server, "next", []) == {:ok, [2]}
    end

    test "a timeout is returned and the instance stays usable", %{module: module} do
      server = start!(module)
      assert {:error, %Error{kind: :timeout}} = Instance.call(server, "spin", [], timeout: 20)
      assert Instance.call(server, "add", [1, 2]) == {:ok, [3]}
    end

    test "a crash restarts a fresh instance under the same name", %{module: module} do
      start!(module, name: :instance_server_test_crash)
      assert Instance.call(:instance_server_test_crash, "next", []) == {:ok, [1]}
      old = Process.whereis(:instance_server_test_crash)

      Process.exit(old, :kill)

      assert Wasmbeam.Test.Wat.eventually(fn ->
               new = Process.whereis(:instance_server_test_crash)
               new != nil and new != old
             end)

      assert Instance.call(:instance_server_test_crash, "next", []) == {:ok, [1]}
    end

    test "callers of a process that dies get :down", %{module: module} do
      {:ok, server} = Instance.start_link(module: module, imports: imports())
      Process.unlink(server)
      {:ok, spin} = Server.async_call(server, "spin", [])
      Process.exit(server, :kill)
      assert {:error, %Error{kind: :down}} = Server.await(spin)
    end
  end

  describe "stop" do
    test "cancels the running and queued calls", %{module: module} do
      {:ok, server} = Instance.start_link(module: module, imports: imports())
      {:ok, spin} = Server.async_call(server, "spin", [])
      {:ok, queued} = Server.async_call(server, "add", [1, 2])
      assert await_info(server, &(&1.queued == 1))

      assert Instance.stop(server) == :ok
      assert {:error, %Error{kind: :cancelled}} = Server.await(spin)
      assert {:error, %Error{kind: :cancelled}} = Server.await(queued)
      assert {:error, %Error{kind: :down}} = Instance.stop(server)
    end
  end

  describe "host functions" do
    test "run in the instance process", %{module: module} do
      test = self()

      hook = fn _caller, x ->
        send(test, {:handler_ran_in, self()})
        x + 1
      end

      server = start_supervised!({Instance, module: module, imports: imports(hook)})
      assert Instance.call(server, "hook", [41]) == {:ok, [42]}
      assert_received {:handler_ran_in, ^server}
    end

    test "a handler that calls its own instance process gets :busy, not a deadlock",
         %{module: module} do
      test = self()

      hook = fn _caller, x ->
        send(test, {:inner, Instance.call(self(), "add", [x, x])})
        x
      end

      server = start_supervised!({Instance, module: module, imports: imports(hook)})
      assert Instance.call(server, "hook", [3]) == {:ok, [3]}
      assert_received {:inner, {:error, %Error{kind: :busy}}}
    end
  end

  test "child_spec takes id and restart", %{module: module} do
    spec = Instance.child_spec(module: module, id: :a, restart: :transient)

    assert %{id: :a, restart: :transient, start: {Instance, :start_link, [[module: ^module]]}} =
             spec

    assert Instance.child_spec(module: module).id == Instance
  end

  describe "priority" do
    test "a long call runs the process at low priority; it is normal again afterwards" do
      server =
        start_supervised!(
          {Instance,
           module: Module.compile!(Wasmbeam.Test.Wat.priority_reporter_wat()),
           imports: Wasmbeam.Test.Wat.priority_imports(self())}
        )

      assert {:ok, []} = Instance.call(server, "quick", [])
      assert_received {:priority_in_handler, :normal}

      assert {:ok, []} = Instance.call(server, "work", [300_000_000])
      assert_received {:priority_in_handler, :low}
      assert Process.info(server, :priority) == {:priority, :normal}

      assert {:error, %Error{kind: :timeout}} = Instance.call(server, "spin", [], timeout: 20)
      assert Process.info(server, :priority) == {:priority, :normal}

      assert {:ok, []} = Instance.call(server, "quick", [])
      assert_received {:priority_in_handler, :normal}
    end
  end
end
