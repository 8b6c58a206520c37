defmodule Wasmbeam.NotAPoolTest do
  # Regression (issue #15): `Wasmbeam.Pool` functions given a process that
  # is not a pool sent it a request it did not understand (an Agent
  # crashed on it). They now answer `:argument` (or `:down` for no
  # process) without sending anything.
  use ExUnit.Case, async: true

  alias Wasmbeam.{Error, Pool}

  test "an Agent is not a pool: :argument errors, and the Agent lives on" do
    {:ok, agent} = Agent.start_link(fn -> :state end)

    assert {:error, %Error{kind: :argument, message: message}} = Pool.call(agent, "f", [])
    assert message =~ "is not a pool"
    assert {:error, %Error{kind: :argument}} = Pool.checkout(agent, fn _ -> :ok end)
    assert {:error, %Error{kind: :argument}} = Pool.stats(agent)
    assert Agent.get(agent, & &1) == :state
  end

  test "a registered name of a non-pool, and nothing at all" do
    {:ok, agent} = Agent.start_link(fn -> :state end)
    name = :"not_a_pool_#{System.unique_integer([:positive])}"
    Process.register(agent, name)

    assert {:error, %Error{kind: :argument}} = Pool.call(name, "f", [])
    assert {:error, %Error{kind: :argument}} = Pool.stats(name)

    assert {:error, %Error{kind: :down}} =
             Pool.call(:"no_such_pool_#{System.unique_integer([:positive])}", "f", [])

    assert Agent.get(agent, & &1) == :state
  end
end
