defmodule Wasmbeam.ExecutionTest do
  # Host calls under deadlines, the death of the calling process, and many
  # guests at once. These tests check outcomes, never how long anything took.
  use ExUnit.Case, async: false

  import Wasmbeam.Test.Wat

  alias Wasmbeam.{Error, Instance, Module}

  @wat ~S[(module
    (import "env" "h" (func $h (param i32) (result i32)))
    (func (export "run") (param i32) (result i32) local.get 0 call $h)
    (func (export "run_then_work") (param i32) (result i32) (local $i i32)
      local.get 0 call $h
      (local.set $i (i32.const 1000))
      (loop local.get $i i32.const 1 i32.sub local.tee $i br_if 0)
      i32.const 1 i32.add)
    (func (export "add_via_host") (param i32 i32) (result i32)
      local.get 0 call $h local.get 1 i32.add)
    (func (export "host_loop") (param i32) (result i32) (local $acc i32)
      (loop
        local.get $acc local.get 0 call $h i32.add local.set $acc
        local.get 0 i32.const 1 i32.sub local.tee 0
        br_if 0)
      local.get $acc)
    (func (export "spin") (result i32) (loop br 0) i32.const 0)
    (func (export "plain") (param i32) (result i32) local.get 0 i32.const 1 i32.add))]

  # Not `:module`: from Elixir 1.15 on, ExUnit's own `:module` key (the
  # test module) wins over a setup_all key of that name.
  setup_all do
    %{compiled: Module.compile!(@wat)}
  end

  defp new_instance(module, handler),
    do: Instance.new!(module, %{"env" => %{"h" => {:fn, [:i32], [:i32], handler}}})

  defp os_threads, do: length(File.ls!("/proc/self/task"))

  # A new call from this process on `instance` works (after the store
  # became free again).
  defp answers_again?(instance) do
    eventually(fn -> Instance.call(instance, "plain", [41]) == {:ok, [42]} end, 2_000)
  end

  describe "a host call inside a call with a timeout" do
    test "the handler sleeps past the deadline and the guest returns right after: :timeout",
         %{compiled: module} do
      instance =
        new_instance(module, fn _c, x ->
          Process.sleep(300)
          x + 1
        end)

      # Nothing in the guest checks the deadline between the host call's
      # return and the end of the function, but the answer came after the
      # deadline: the call times out rather than report a late success.
      assert {:error, %Error{kind: :timeout}} = Instance.call(instance, "run", [1], timeout: 50)
      assert {:ok, [6]} = Instance.call(instance, "run", [5], timeout: 5_000)
    end

    test "the handler sleeps past the deadline and the guest works on: :timeout", %{
      compiled: module
    } do
      instance =
        new_instance(module, fn _c, x ->
          send(self(), :handler_ran)
          Process.sleep(300)
          x
        end)

      assert {:error, %Error{kind: :timeout}} =
               Instance.call(instance, "run_then_work", [1], timeout: 50)

      assert_received :handler_ran
      assert {:ok, [2]} = Instance.call(instance, "run_then_work", [1], timeout: 5_000)
    end

    test "a handler process that answers after the deadline, the guest works on: :timeout", %{
      compiled: module
    } do
      sleeper =
        spawn(fn ->
          receive do
            {:"$gen_call", from, {:wasmbeam_host_call, "env.h", _caller, [x]}} ->
              Process.sleep(300)
              GenServer.reply(from, [x])
          end
        end)

      instance = new_instance(module, {:process, sleeper})

      assert {:error, %Error{kind: :timeout}} =
               Instance.call(instance, "run_then_work", [1], timeout: 50)

      assert {:ok, [42]} = Instance.call(instance, "plain", [41])
    end
  end

  describe "the calling process dies" do
    defmodule Blocker do
      # A handler process that never answers: it tells the test who is
      # waiting and keeps the request.
      use GenServer

      def start(test), do: GenServer.start(__MODULE__, test)

      @impl true
      def init(test), do: {:ok, test}

      @impl true
      def handle_call({:wasmbeam_host_call, name, _caller, args}, from, test) do
        send(test, {:blocked, name, args, from})
        {:noreply, test}
      end
    end

    test "while its guest waits for another process's handler", %{compiled: module} do
      {:ok, blocker} = Blocker.start(self())
      instance = new_instance(module, {:process, blocker, timeout: :infinity})

      caller = spawn(fn -> Instance.call(instance, "run", [1]) end)
      assert_receive {:blocked, "env.h", [1], from}, 5_000
      assert {:error, %Error{kind: :busy}} = Instance.call(instance, "plain", [1], wait: false)

      ref = Process.monitor(caller)
      Process.exit(caller, :kill)
      assert_receive {:DOWN, ^ref, :process, ^caller, :killed}

      # another process gets the instance back
      task = Task.async(fn -> answers_again?(instance) end)
      assert Task.await(task, 5_000)
      assert {:ok, [42]} = Instance.call(instance, "plain", [41])

      # the late answer goes nowhere and harms nothing
      GenServer.reply(from, [5])
      assert {:ok, [42]} = Instance.call(instance, "plain", [41])

      # and host calls work again (the handler process answers this time)
      GenServer.stop(blocker)
      instance2 = new_instance(module, fn _c, x -> x * 3 end)
      assert {:ok, [9]} = Instance.call(instance2, "run", [3])
    end

    test "while its own handler blocks", %{compiled: module} do
      test = self()

      instance =
        new_instance(module, fn _c, x ->
          if x == 1 do
            send(test, {:in_handler, self()})
            Process.sleep(:infinity)
          end

          x
        end)

      caller = spawn(fn -> Instance.call(instance, "run", [1]) end)
      assert_receive {:in_handler, ^caller}, 5_000

      ref = Process.monitor(caller)
      Process.exit(caller, :kill)
      assert_receive {:DOWN, ^ref, :process, ^caller, :killed}

      assert answers_again?(instance)
      # host calls work again, served by the new caller
      assert {:ok, [2]} = Instance.call(instance, "run", [2])
    end

    test "while its guest spins without a timeout", %{compiled: module} do
      instance = new_instance(module, fn _c, x -> x end)
      caller = spawn(fn -> Instance.call(instance, "spin", []) end)
      assert await_busy(instance.store)

      ref = Process.monitor(caller)
      Process.exit(caller, :kill)
      assert_receive {:DOWN, ^ref, :process, ^caller, :killed}

      assert answers_again?(instance)
      assert {:ok, [7]} = Instance.call(instance, "run", [7])
    end

    test "while deep in nested host calls", %{compiled: module} do
      test = self()

      instance =
        new_instance(module, fn caller, n ->
          if n == 0 do
            send(test, {:deepest, self()})
            Process.sleep(:infinity)
          else
            {:ok, [r]} = Wasmbeam.Caller.call(caller, "run", [n - 1])
            r
          end
        end)

      caller = spawn(fn -> Instance.call(instance, "run", [5]) end)
      assert_receive {:deepest, ^caller}, 5_000
      Process.exit(caller, :kill)

      assert answers_again?(instance)
    end
  end

  describe "concurrency" do
    test "200 processes, each with its own instance, 100 host calls each", %{compiled: module} do
      tasks =
        for p <- 1..200 do
          Task.async(fn ->
            instance = new_instance(module, fn _c, x -> x * 2 + p end)

            for i <- 1..100 do
              case Instance.call(instance, "add_via_host", [i, p]) do
                {:ok, [r]} when r == i * 2 + p + p -> :ok
                other -> {:wrong, p, i, other}
              end
            end
            |> Enum.reject(&(&1 == :ok))
          end)
        end

      results = Task.await_many(tasks, 30_000)
      assert Enum.all?(results, &(&1 == [])), inspect(Enum.reject(results, &(&1 == [])))
    end

    test "a guest loop with 1000 host calls", %{compiled: module} do
      instance = new_instance(module, fn _c, x -> x end)
      # sum of 1..1000
      assert {:ok, [500_500]} = Instance.call(instance, "host_loop", [1000])
    end

    test "many processes on one instance: a correct result or :busy, nothing else", %{
      compiled: module
    } do
      instance =
        new_instance(module, fn _c, x ->
          # give others a chance to collide with this call
          :erlang.yield()
          x * 2
        end)

      tasks =
        for p <- 1..50 do
          Task.async(fn ->
            receive do
              :go -> :ok
            end

            Enum.reduce(1..20, %{busy: 0, wrong: []}, fn i, acc ->
              retry(fn -> Instance.call(instance, "add_via_host", [i, p]) end, i * 2 + p, acc)
            end)
          end)
        end

      # start them all at once so that their calls overlap
      Enum.each(tasks, &send(&1.pid, :go))
      results = Task.await_many(tasks, 30_000)
      assert Enum.flat_map(results, & &1.wrong) == []
      # the instance is free and fine afterwards
      assert {:ok, [7]} = Instance.call(instance, "add_via_host", [2, 3])
    end
  end

  # Calls until the call is not refused as :busy; records wrong answers.
  defp retry(call, expected, acc, attempts \\ 0) do
    case call.() do
      {:ok, [^expected]} ->
        acc

      {:error, %Error{kind: :busy}} when attempts < 100_000 ->
        :erlang.yield()
        retry(call, expected, %{acc | busy: acc.busy + 1}, attempts + 1)

      other ->
        %{acc | wrong: [{expected, other} | acc.wrong]}
    end
  end

  describe "many guests at once" do
    @tag timeout: 120_000
    test "1000 guests wait in host calls at once; no thread per guest", %{compiled: module} do
      test = self()
      # warm up: the first call may start the engine's ticker
      warm = new_instance(module, fn _c, x -> x end)
      assert {:ok, [1]} = Instance.call(warm, "run", [1])
      threads_before = os_threads()

      tasks =
        for n <- 1..1000 do
          Task.async(fn ->
            instance =
              new_instance(module, fn _c, x ->
                send(test, {:waiting, self()})

                receive do
                  :go -> x * 2
                end
              end)

            Instance.call(instance, "run_then_work", [n])
          end)
        end

      waiting =
        for _ <- 1..1000 do
          assert_receive {:waiting, pid}, 30_000
          pid
        end

      threads_during = os_threads()

      Enum.each(waiting, &send(&1, :go))
      results = Task.await_many(tasks, 60_000)

      for {result, n} <- Enum.with_index(results, 1) do
        assert result == {:ok, [n * 2 + 1]}
      end

      assert threads_during - threads_before < 8,
             "OS threads: #{threads_before} before, #{threads_during} with 1000 guests waiting"
    end

    @tag timeout: 120_000
    test "100 guests in endless loops with timeout: 200 all time out; the engine works after",
         %{compiled: module} do
      tasks =
        for _ <- 1..100 do
          Task.async(fn ->
            instance = new_instance(module, fn _c, x -> x end)
            {instance, Instance.call(instance, "spin", [], timeout: 200)}
          end)
        end

      results = Task.await_many(tasks, 60_000)

      for {_instance, result} <- results do
        assert {:error, %Error{kind: :timeout}} = result
      end

      # the same instances and a new one on the same engine answer
      for {instance, _} <- Enum.take(results, 10) do
        assert {:ok, [42]} = Instance.call(instance, "plain", [41])
      end

      fresh = new_instance(module, fn _c, x -> x + 1 end)
      assert {:ok, [2]} = Instance.call(fresh, "run", [1], timeout: 1_000)
      assert {:error, %Error{kind: :timeout}} = Instance.call(fresh, "spin", [], timeout: 50)
    end

    defmodule Pong do
      use GenServer
      def start_link, do: GenServer.start_link(__MODULE__, 0)
      @impl true
      def init(n), do: {:ok, n}
      @impl true
      def handle_call(:ping, _from, n), do: {:reply, {:pong, n + 1}, n + 1}
    end

    @tag timeout: 120_000
    test "a plain GenServer keeps answering while 20 guests spin", %{compiled: module} do
      {:ok, pong} = Pong.start_link()
      test = self()

      spinners =
        for _ <- 1..20 do
          Task.async(fn ->
            instance = new_instance(module, fn _c, x -> x end)
            send(test, :spinning)
            Instance.call(instance, "spin", [], timeout: 1_000)
          end)
        end

      for _ <- 1..20, do: assert_receive(:spinning, 10_000)

      answers = for _ <- 1..200, do: GenServer.call(pong, :ping, 10_000)
      assert answers == Enum.map(1..200, &{:pong, &1})

      for result <- Task.await_many(spinners, 30_000) do
        assert {:error, %Error{kind: :timeout}} = result
      end
    end
  end
end
