defmodule Wasmbeam.SchedulingTest do
  # Guests that spin must not starve plain BEAM processes, and every spinning
  # guest must still be stopped at its timeout. These tests check outcomes,
  # never how long anything took.
  use ExUnit.Case, async: false

  alias Wasmbeam.{Error, Instance, Module}

  @spin ~S[(module (func (export "spin") (loop br 0)) (func (export "ok") (result i32) i32.const 1))]

  test "a sleeping process keeps running while 4 guests spin, and all 4 time out" do
    module = Module.compile!(@spin)
    instances = for _ <- 1..4, do: Instance.new!(module)
    parent = self()

    spinners =
      for instance <- instances do
        Task.async(fn ->
          send(parent, {:started, self()})
          Instance.call(instance, "spin", [], timeout: 500)
        end)
      end

    for _ <- spinners, do: assert_receive({:started, _}, 5_000)

    sleeper =
      Task.async(fn ->
        Enum.reduce(1..50, 0, fn _, count ->
          Process.sleep(1)
          count + 1
        end)
      end)

    # the sleeper finishes: it got scheduled 50 times while the guests spun
    assert Task.await(sleeper, 30_000) == 50

    results = Enum.map(spinners, &Task.await(&1, 30_000))
    assert length(results) == 4

    for result <- results do
      assert {:error, %Error{kind: :timeout}} = result
    end

    # and every instance answers afterwards
    for instance <- instances do
      assert {:ok, [1]} = Instance.call(instance, "ok", [])
    end
  end

  test "more spinning guests than schedulers all time out and the VM still answers" do
    module = Module.compile!(@spin)
    count = System.schedulers_online() * 2 + 2

    tasks =
      for _ <- 1..count do
        Task.async(fn -> module |> Instance.new!() |> Instance.call("spin", [], timeout: 200) end)
      end

    # a message round trip to another process still works meanwhile
    pong = Task.async(fn -> :pong end)
    assert Task.await(pong, 30_000) == :pong

    for task <- tasks do
      assert {:error, %Error{kind: :timeout}} = Task.await(task, 30_000)
    end
  end

  describe "a long call runs at low priority" do
    setup do
      %{
        instance:
          Wasmbeam.Test.Wat.instance!(
            Wasmbeam.Test.Wat.priority_reporter_wat(),
            Wasmbeam.Test.Wat.priority_imports(self())
          )
      }
    end

    test "after its first slice, and the caller's priority comes back", %{instance: instance} do
      assert {:ok, []} = Instance.call(instance, "quick", [])
      assert_received {:priority_in_handler, :normal}

      assert {:ok, []} = Instance.call(instance, "work", [300_000_000])
      assert_received {:priority_in_handler, :low}
      assert Process.info(self(), :priority) == {:priority, :normal}
    end

    test "the priority comes back after a timeout too", %{instance: instance} do
      assert {:error, %Error{kind: :timeout}} = Instance.call(instance, "spin", [], timeout: 20)
      assert Process.info(self(), :priority) == {:priority, :normal}
      assert {:ok, []} = Instance.call(instance, "quick", [])
      assert_received {:priority_in_handler, :normal}
    end

    test "a process that chose another priority keeps it", %{instance: instance} do
      for chosen <- [:high, :low] do
        task =
          Task.async(fn ->
            Process.flag(:priority, chosen)
            result = Instance.call(instance, "work", [300_000_000])
            {result, Process.info(self(), :priority)}
          end)

        assert {{:ok, []}, {:priority, ^chosen}} = Task.await(task, 30_000)
        assert_received {:priority_in_handler, ^chosen}
      end
    end
  end

  describe "the ticker's priority" do
    test "ticker_realtime: false keeps it an ordinary thread; guests still time out" do
      engine = Wasmbeam.Engine.new!(ticker_realtime: false)
      refute Wasmbeam.Engine.ticker_realtime?(engine)
      instance = Instance.new!(Module.compile!(engine, @spin))
      assert {:error, %Error{kind: :timeout}} = Instance.call(instance, "spin", [], timeout: 20)
    end

    test "otherwise it is real-time where the OS allows, and guests time out the same" do
      engine = Wasmbeam.Engine.new!()
      assert is_boolean(Wasmbeam.Engine.ticker_realtime?(engine))
      instance = Instance.new!(Module.compile!(engine, @spin))
      assert {:error, %Error{kind: :timeout}} = Instance.call(instance, "spin", [], timeout: 20)
    end
  end
end
