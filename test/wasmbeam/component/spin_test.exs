defmodule Wasmbeam.Component.SpinTest do
  # A C guest that runs long, with and without host calls: deadlines, fuel
  # and caller death inside component calls and inside their host calls.
  use ExUnit.Case, async: true

  alias Wasmbeam.{Component, Engine, Error}
  alias Wasmbeam.Component.Instance, as: CI

  setup_all do
    path = Wasmbeam.ComponentFixtures.path!("spin")
    fuel_engine = Engine.new!(consume_fuel: true)

    {:ok,
     component: Component.compile_file!(path),
     fuel_component: Component.compile_file!(fuel_engine, path)}
  end

  defmodule Silent do
    # A handler process that takes host calls and never answers them.
    use GenServer
    @impl true
    def init(state), do: {:ok, state}
    @impl true
    def handle_call(_request, _from, state), do: {:noreply, state}
  end

  defp spin!(component, tick, options \\ []),
    do: CI.new!(component, %{"tick" => tick}, options)

  test "many host calls in one component call", ctx do
    i = spin!(ctx.component, fn _caller, n -> n * 2 end)
    assert CI.call(i, "call-host", [1_000]) == {:ok, 999_000}
    assert CI.call(i, "spin-for", [1_000]) == {:ok, 1_000}
  end

  test "a deadline stops a guest that never returns", ctx do
    i = spin!(ctx.component, fn _, n -> n end)
    assert {:error, %Error{kind: :timeout}} = CI.call(i, "spin-forever", [], timeout: 30)
  end

  test "fuel stops a guest, and a budget that suffices lets it finish", ctx do
    i = spin!(ctx.fuel_component, fn _, n -> n end, fuel: 1_000_000_000)
    assert CI.call(i, "spin-for", [1_000], fuel: 10_000_000) == {:ok, 1_000}

    assert {:error, %Error{kind: :out_of_fuel}} =
             CI.call(i, "spin-for", [100_000_000], fuel: 100_000)
  end

  test "a deadline counts the time spent in host calls", ctx do
    i =
      spin!(ctx.component, fn _, n ->
        receive do
        after
          # Not synchronisation: a handler slower than the call's timeout.
          200 -> n
        end
      end)

    {micros, result} = :timer.tc(fn -> CI.call(i, "call-host", [10], timeout: 50) end)
    assert {:error, %Error{kind: :timeout}} = result
    assert micros < 1_000_000
  end

  test "a handler process that does not answer in time traps the call", ctx do
    {:ok, silent} = GenServer.start_link(__MODULE__.Silent, nil)
    i = CI.new!(ctx.component, %{"tick" => {:process, silent, timeout: 50}})
    assert {:error, %Error{kind: :trap, message: msg}} = CI.call(i, "call-host", [1])
    assert msg =~ "tick"
    assert msg =~ "did not answer within 50 ms"
  end

  test "the caller's death inside a host call cancels the call and frees the store", ctx do
    me = self()

    i =
      spin!(ctx.component, fn _, _n ->
        send(me, {:in_host_call, self()})

        receive do
          :never -> 0
        end
      end)

    {pid, ref} = spawn_monitor(fn -> CI.call(i, "call-host", [3]) end)
    assert_receive {:in_host_call, ^pid}
    Process.exit(pid, :kill)
    assert_receive {:DOWN, ^ref, :process, ^pid, :killed}

    # The store is handed back (cancelled, so its components are not
    # entered again): a waiting caller gets an answer, not a hang.
    assert {:error, %Error{kind: :trap, trap: :cannot_enter_component}} =
             CI.call(i, "spin-for", [1], wait: true, timeout: 5_000)
  end
end
