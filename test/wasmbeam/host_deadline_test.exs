defmodule Wasmbeam.HostDeadlineTest do
  # Regression (issue #15, "deadlines that do not hold"): a call's
  # `timeout:` holds while a host handler runs. A handler process gets at
  # most the call's remaining time; an in-process handler cannot be
  # interrupted, but a call whose handler returned after the deadline
  # reports `:timeout`, never a late success.
  use ExUnit.Case, async: true

  alias Wasmbeam.{Error, Instance}

  @wat ~S[(module
    (import "env" "h" (func $h (param i32) (result i32)))
    (func (export "run") (param i32) (result i32) local.get 0 call $h)
    (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))]

  defmodule Silent do
    # A handler process that takes every host call and never answers.
    use GenServer
    def init(parent), do: {:ok, parent}

    def handle_call({:wasmbeam_host_call, _name, _caller, _args}, _from, parent) do
      send(parent, :handler_got_the_call)
      {:noreply, parent}
    end
  end

  defp instance(handler),
    do: Instance.new!(Wasmbeam.Module.compile!(@wat), %{"env" => %{"h" => handler}})

  test "an in-process handler that returns after the deadline: the call times out" do
    slow = fn _caller, x ->
      # The handler's own work outlasts the call's deadline.
      receive do
      after
        300 -> x
      end
    end

    instance = instance({:fn, [:i32], [:i32], slow})
    assert {:error, %Error{kind: :timeout}} = Instance.call(instance, "run", [1], timeout: 100)
    # The instance stays usable, and a call within its deadline succeeds.
    assert {:ok, [3]} = Instance.call(instance, "add", [1, 2], timeout: 100)
    assert {:ok, [5]} = Instance.call(instance, "run", [5], timeout: 1_000)
  end

  @tag timeout: 10_000
  test "a handler process with timeout: :infinity gets only the call's remaining time" do
    {:ok, silent} = GenServer.start_link(Silent, self())
    instance = instance({:fn, [:i32], [:i32], {:process, silent, timeout: :infinity}})

    assert {:error, %Error{kind: :timeout}} = Instance.call(instance, "run", [1], timeout: 200)
    assert_received :handler_got_the_call
    assert {:ok, [3]} = Instance.call(instance, "add", [1, 2])
  end

  test "a handler that answers in time gives the result" do
    instance = instance({:fn, [:i32], [:i32], fn _caller, x -> x * 10 end})
    assert {:ok, [70]} = Instance.call(instance, "run", [7], timeout: 1_000)
  end
end
