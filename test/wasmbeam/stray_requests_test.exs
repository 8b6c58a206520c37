defmodule Wasmbeam.StrayRequestsTest do
  # Regression (issue #15, item 3): no process of the library crashes on a
  # request or message that is not meant for it. An unknown call is
  # answered with an `:argument` error; an unknown cast or message is
  # ignored. Before, `Wasmbeam.Instance.Server.info(pool)` (an unknown call
  # to a pool) crashed the pool, and a cast crashed an instance process, a
  # pool and the module cache.
  use ExUnit.Case, async: true

  alias Wasmbeam.{Error, Instance, InstanceSupervisor, Module, ModuleCache, Pool}
  alias Wasmbeam.Instance.Server

  @moduletag :tmp_dir
  # Ignored messages are logged at debug level.
  @moduletag :capture_log

  @wat ~S[(module
    (global $n (mut i32) (i32.const 0))
    (func (export "next") (result i32)
      global.get $n i32.const 1 i32.add global.set $n global.get $n))]

  # Messages no process of the library expects from a stranger.
  defp strays do
    [
      :hello,
      {:"$watch", :not_a_pid},
      {:"$in", 1, self(), :bogus},
      {:"$expire", :not_a_from},
      {:"$wasmbeam_call", :not_a_pid},
      {:"$wasmbeam_cancel", make_ref()},
      {:"$wasmbeam_step", make_ref()},
      {:wasmbeam_wake, 1},
      {:wasmbeam_store_idle, 1},
      {:EXIT, self(), :boom},
      {:DOWN, make_ref(), :process, self(), :boom}
    ]
  end

  setup do
    %{module: Module.compile!(@wat)}
  end

  # Sends `process` an unknown call, an unknown cast and every stray
  # message; checks that the call was answered with an `:argument` error
  # and that `process` is alive.
  defp pester(process) do
    monitor = Process.monitor(process)

    assert {:error, %Error{kind: :argument}} = GenServer.call(process, {:no_such_request, 1})
    assert {:error, %Error{kind: :argument}} = GenServer.call(process, :"$wasmbeam_info_typo")
    GenServer.cast(process, {:no_such_cast, 1})
    GenServer.cast(process, :"$stats")
    for message <- strays(), do: send(process, message)

    # A call after them all is answered: they have been handled.
    assert {:error, %Error{kind: :argument}} = GenServer.call(process, :still_there?)
    refute_received {:DOWN, ^monitor, _, _, _}
    Process.demonitor(monitor, [:flush])
  end

  test "a pool answers what it does not know, and keeps working", %{module: module} do
    pool = start_supervised!({Pool, module: module, size: 1})
    assert {:ok, [1]} = Pool.call(pool, "next", [])

    assert {:error, %Error{kind: :argument}} = Server.info(pool)

    assert {:error, %Error{kind: :argument}} =
             GenServer.call(pool, {:"$checkout", :not_a_timeout})

    pester(pool)

    assert {:ok, [2]} = Pool.call(pool, "next", [])
    assert {:ok, %{instances: 1, in_use: 0}} = Pool.stats(pool)
  end

  test "an instance process answers what it does not know, and keeps its state",
       %{module: module} do
    server = start_supervised!({Instance, module: module})
    assert {:ok, [1]} = Instance.call(server, "next", [])

    assert {:error, %Error{kind: :argument}} = Pool.stats(server)
    pester(server)

    assert {:ok, [2]} = Instance.call(server, "next", [])
    assert {:ok, %{completed: 2}} = Server.info(server)
  end

  test "the module cache answers what it does not know, and keeps working", ctx do
    name = :"stray_cache_#{System.unique_integer([:positive])}"
    cache = start_supervised!({ModuleCache, name: name, dir: Path.join(ctx.tmp_dir, "cache")})

    assert {:error, %Error{kind: :argument}} = Server.info(cache)
    pester(cache)

    assert {:ok, %Module{}} = ModuleCache.compile(Wasmbeam.Engine.default(), @wat, cache: name)
    assert %{compiles: 1} = ModuleCache.stats(name)
  end

  test "the process that supervises an instance answers what it does not know",
       %{module: module} do
    sup = start_supervised!(InstanceSupervisor)
    key = {:stray, make_ref()}
    {:ok, instance} = InstanceSupervisor.start_instance(key, module: module, supervisor: sup)
    [{_, keeper, _, _}] = DynamicSupervisor.which_children(sup)

    assert {:error, %Error{kind: :argument}} = Server.info(keeper)
    pester(keeper)

    assert InstanceSupervisor.whereis(key) == instance
    assert {:ok, [1]} = Instance.call(InstanceSupervisor.via(key), "next", [])
  end
end
