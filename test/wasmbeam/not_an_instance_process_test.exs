defmodule Wasmbeam.NotAnInstanceProcessTest do
  # Regression (issue #15, item 4): a function that takes an instance
  # process, given a process that is not one (an Agent, a pool, a plain
  # process) or a dead one, answers a clear error promptly and leaves the
  # other process alone. Before, `Wasmbeam.Instance.call/4` waited for ever
  # for an answer that could not come, `info/1` crashed an Agent, and
  # `Wasmbeam.Instance.stop/1` stopped it.
  use ExUnit.Case, async: true

  # The request stays in the other process's mailbox (an Agent logs it).
  @moduletag :capture_log

  alias Wasmbeam.{Error, Instance, Module, Pool}
  alias Wasmbeam.Instance.Server

  @wat ~S[(module
    (import "env" "hold" (func $hold))
    (func (export "one") (result i32) i32.const 1)
    (func (export "hold") (result i32) call $hold i32.const 2))]

  # Generous: an answer is expected within a fraction of this.
  @prompt 2_000

  setup do
    %{module: Module.compile!(@wat)}
  end

  # Runs `fun` in a task and answers its result, or fails if it does not
  # return within @prompt ms.
  defp promptly(fun) do
    task = Task.async(fun)

    case Task.yield(task, @prompt) || Task.shutdown(task, :brutal_kill) do
      {:ok, result} -> result
      nil -> flunk("no answer within #{@prompt} ms")
    end
  end

  defp not_instance?(result),
    do: match?({:error, %Error{kind: :argument, message: "not an instance process" <> _}}, result)

  test "an Agent is not an instance process: errors, and the Agent lives on" do
    agent = start_supervised!({Agent, fn -> :state end})

    for options <- [[], [timeout: 10], [timeout: 60_000]] do
      result = promptly(fn -> Instance.call(agent, "one", [], options) end)
      assert not_instance?(result), inspect(result)
    end

    assert not_instance?(promptly(fn -> Server.info(agent) end))
    assert not_instance?(promptly(fn -> Instance.stop(agent) end))

    {:ok, request} = Server.async_call(agent, "one", [])
    assert not_instance?(promptly(fn -> Server.await(request) end))

    assert Agent.get(agent, & &1) == :state
  end

  test "neither is a pool, a plain process or a registered name of one", %{module: module} do
    imports = %{"env" => %{"hold" => {:fn, [], [], fn _caller -> :ok end}}}
    pool = start_supervised!({Pool, module: module, imports: imports, size: 1})
    plain = spawn_link(fn -> receive(do: (:never -> :ok)) end)
    name = :"plain_#{System.unique_integer([:positive])}"
    Process.register(plain, name)

    for target <- [pool, plain, name] do
      result = promptly(fn -> Instance.call(target, "one", []) end)
      assert not_instance?(result), "#{inspect(target)}: #{inspect(result)}"
    end

    assert Process.alive?(pool) and Process.alive?(plain)
    assert {:ok, [1]} = Pool.call(pool, "one", [])
  end

  test "a dead process is :down at once" do
    dead = spawn(fn -> :ok end)
    monitor = Process.monitor(dead)
    assert_receive {:DOWN, ^monitor, _, _, _}

    assert {:error, %Error{kind: :down}} = promptly(fn -> Instance.call(dead, "one", []) end)
    assert {:error, %Error{kind: :down}} = promptly(fn -> Server.info(dead) end)
    assert {:error, %Error{kind: :down}} = promptly(fn -> Instance.stop(dead) end)
  end

  test "an instance process that takes long to answer is still waited for", %{module: module} do
    test = self()

    hold = fn _caller ->
      send(test, {:holding, self()})
      receive(do: (:release -> :ok))
    end

    server =
      start_supervised!(
        {Instance, module: module, imports: %{"env" => %{"hold" => {:fn, [], [], hold}}}}
      )

    task = Task.async(fn -> Instance.call(server, "hold", []) end)
    assert_receive {:holding, ^server}
    # Long enough for the caller to wonder whether this is an instance process.
    assert Task.yield(task, 300) == nil
    send(server, :release)
    assert Task.await(task) == {:ok, [2]}
    assert {:ok, %{completed: 1}} = Server.info(server)
  end
end
