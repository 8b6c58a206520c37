defmodule Wasmbeam.SupervisionContainmentTest do
  # Regression (issue #15, item 1): no rate of guest failures takes down
  # anything beyond the instances involved. Before, about 15 abnormal exits
  # of instance processes within a few seconds exceeded the restart
  # intensity of `Wasmbeam.InstanceSupervisor`, then of `Wasmbeam.Supervisor`,
  # and the whole `:wasmbeam` application stopped: module cache, registry
  # and every other tenant's instances.
  #
  # Not async: it stresses the application's own supervisor and counts its
  # children.
  use ExUnit.Case, async: false

  import Wasmbeam.Test.Wat, only: [eventually: 1]

  alias Wasmbeam.{Error, Instance, InstanceSupervisor, Module}
  alias Wasmbeam.Wasi.Pipe

  # Crashes and given-up instances are logged.
  @moduletag :capture_log

  @counter ~S[(module
    (global $n (mut i32) (i32.const 0))
    (func (export "next") (result i32)
      global.get $n i32.const 1 i32.add global.set $n global.get $n))]

  # The start function calls `env.gate`: see `gate_imports/2`.
  @gated ~S[(module
    (import "env" "gate" (func $gate))
    (func $start call $gate)
    (start $start)
    (func (export "nop")))]

  # `read_stdin` parks in a WASI read of an empty pipe: a deadline that
  # passes there loses the store, and the instance process exits.
  @stdin_reader ~S[(module
    (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
    (memory (export "memory") 1)
    (func (export "read_stdin") (result i32)
      (i32.store (i32.const 0) (i32.const 100))
      (i32.store (i32.const 4) (i32.const 64))
      (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
      (i32.load (i32.const 8))))]

  @failing 1_000
  # The default policy restarts an instance at most 3 times in 5 s: its
  # start and 3 restarts, then it is given up.
  @attempts 4

  setup_all do
    {:ok, counter: Module.compile!(@counter), gated: Module.compile!(@gated)}
  end

  # Lets the first start of the instance `key` through and makes every
  # later one trap; each attempt is reported to `test`.
  defp gate_imports(key, test) do
    starts = :counters.new(1, [])

    gate = fn _caller ->
      :counters.add(starts, 1, 1)
      send(test, {:start_attempt, key})
      if :counters.get(starts, 1) > 1, do: raise("only the first start succeeds")
      :ok
    end

    %{"env" => %{"gate" => {:fn, [], [], gate}}}
  end

  defp vital_pids do
    for name <- [
          Wasmbeam.Supervisor,
          Wasmbeam.InstanceSupervisor,
          Wasmbeam.InstanceRegistry,
          Wasmbeam.ModuleCache
        ],
        into: %{},
        do: {name, Process.whereis(name)}
  end

  # Calls every bystander in turn until told to stop; answers how many
  # rounds it made and every answer that was not a result.
  defp keep_calling(keys, rounds \\ 0, failures \\ []) do
    receive do
      {:stop, from} -> send(from, {:calls, rounds, Enum.reverse(failures)})
    after
      0 ->
        failures =
          Enum.reduce(keys, failures, fn key, failures ->
            case Instance.call(InstanceSupervisor.via(key), "next", [], timeout: 5_000) do
              {:ok, [_]} -> failures
              other -> [{key, other} | failures]
            end
          end)

        keep_calling(keys, rounds + 1, failures)
    end
  end

  defp start_bystanders(ctx, count) do
    for i <- 1..count do
      key = {:bystander, i, make_ref()}
      {:ok, pid} = InstanceSupervisor.start_instance(key, module: ctx.counter)
      on_exit(fn -> InstanceSupervisor.stop_instance(key) end)
      {key, pid}
    end
  end

  defp stop_calling(caller) do
    send(caller, {:stop, self()})
    assert_receive {:calls, rounds, failures}, 10_000
    {rounds, failures}
  end

  test "1,000 instances failing in a burst take down nothing but themselves", ctx do
    vital = vital_pids()
    assert Enum.all?(Map.values(vital), &is_pid/1)

    bystanders = start_bystanders(ctx, 4)
    keys = Enum.map(bystanders, &elem(&1, 0))
    test = self()
    caller = spawn_link(fn -> keep_calling(keys) end)

    # Each failing instance starts, is killed, and fails every restart
    # (its start function traps), until it is given up.
    failing =
      1..@failing
      |> Task.async_stream(
        fn i ->
          key = {:failing, i, make_ref()}

          {:ok, pid} =
            InstanceSupervisor.start_instance(key,
              module: ctx.gated,
              imports: gate_imports(key, test)
            )

          Process.exit(pid, :kill)
          key
        end,
        max_concurrency: 8,
        timeout: 30_000
      )
      |> Enum.map(fn {:ok, key} -> key end)

    for key <- failing, _attempt <- 1..@attempts do
      assert_receive {:start_attempt, ^key}, 10_000
    end

    {rounds, failures} = stop_calling(caller)

    # Everything else is untouched: the same processes, still answering.
    assert vital_pids() == vital
    assert {:wasmbeam, _, _} = List.keyfind(Application.started_applications(), :wasmbeam, 0)
    assert failures == []
    assert rounds > 0

    for {key, pid} <- bystanders do
      assert InstanceSupervisor.whereis(key) == pid
      # Its state survived: one more than the rounds made.
      assert Instance.call(InstanceSupervisor.via(key), "next", []) == {:ok, [rounds + 1]}
    end

    # The failing ones were given up, not restarted for ever.
    assert eventually(fn -> Enum.all?(failing, &(InstanceSupervisor.whereis(&1) == nil)) end)
    refute_received {:start_attempt, _}

    # New instances start, and the module cache still compiles.
    key = {:after_the_burst, make_ref()}
    assert {:ok, _pid} = InstanceSupervisor.start_instance(key, module: ctx.counter)
    assert Instance.call(InstanceSupervisor.via(key), "next", []) == {:ok, [1]}
    assert InstanceSupervisor.stop_instance(key) == :ok
    assert {:ok, %Module{}} = Wasmbeam.ModuleCache.compile(Wasmbeam.Engine.default(), @counter)
  end

  test "WASI guests that lose their store at a deadline are restarted, one by one", ctx do
    vital = vital_pids()
    [{bystander, bystander_pid}] = start_bystanders(ctx, 1)
    reader = Module.compile!(@stdin_reader)

    readers =
      for i <- 1..20 do
        key = {:stdin_reader, i, make_ref()}
        options = [module: reader, instance_options: [wasi: [stdin: Pipe.new()]]]
        {:ok, pid} = InstanceSupervisor.start_instance(key, options)
        on_exit(fn -> InstanceSupervisor.stop_instance(key) end)
        {key, pid, Process.monitor(pid)}
      end

    # Each call outlives its timeout while blocked on stdin: the store is
    # lost and the instance process exits.
    readers
    |> Task.async_stream(fn {key, _pid, _monitor} ->
      Instance.call(InstanceSupervisor.via(key), "read_stdin", [], timeout: 20)
    end)
    |> Enum.each(fn {:ok, result} -> assert {:error, %Error{kind: :timeout}} = result end)

    for {_key, pid, monitor} <- readers do
      assert_receive {:DOWN, ^monitor, :process, ^pid, {:wasmbeam_poisoned, _}}, 5_000
    end

    # Each was restarted once, fresh; nothing else moved.
    for {key, old, _monitor} <- readers do
      assert eventually(fn -> InstanceSupervisor.whereis(key) not in [nil, old] end)
    end

    assert vital_pids() == vital
    assert InstanceSupervisor.whereis(bystander) == bystander_pid
    assert Instance.call(InstanceSupervisor.via(bystander), "next", []) == {:ok, [1]}
  end

  # Reports every start of the instance `key` to `test`; never fails.
  defp reporting_imports(key, test) do
    report = fn _caller -> send(test, {:start_attempt, key}) && :ok end
    %{"env" => %{"gate" => {:fn, [], [], report}}}
  end

  defp start_reporting(sup, key, ctx, options \\ []) do
    options =
      [module: ctx.gated, imports: reporting_imports(key, self()), supervisor: sup] ++ options

    {:ok, pid} = InstanceSupervisor.start_instance(key, options)
    assert_receive {:start_attempt, ^key}
    pid
  end

  # Kills the instance `key` and waits for its restart (the name is
  # registered before the start function runs).
  defp kill_and_await_restart(key, pid) do
    Process.exit(pid, :kill)
    assert_receive {:start_attempt, ^key}, 5_000
    new = InstanceSupervisor.whereis(key)
    assert is_pid(new) and new != pid
    new
  end

  test "restarts are counted for each instance alone", ctx do
    sup = start_supervised!({InstanceSupervisor, max_restarts: 1, max_seconds: 60})
    keys = for i <- 1..3, do: {:per_instance, i, make_ref()}
    pids = for key <- keys, do: start_reporting(sup, key, ctx)

    # One restart each: three restarts in all, more than max_restarts, but
    # not for any one instance.
    restarted = for {key, pid} <- Enum.zip(keys, pids), do: kill_and_await_restart(key, pid)

    assert Process.alive?(sup)
    assert %{active: 3} = DynamicSupervisor.count_children(sup)
    for pid <- restarted, do: assert(Process.alive?(pid))
  end

  test "an instance that fails too often is given up, reported, and can start again", ctx do
    sup = start_supervised!({InstanceSupervisor, max_restarts: 1, max_seconds: 60})
    key = {:given_up, make_ref()}
    neighbour = {:neighbour, make_ref()}
    neighbour_pid = start_reporting(sup, neighbour, ctx)

    log =
      ExUnit.CaptureLog.capture_log(fn ->
        others = children(sup)
        pid = start_reporting(sup, key, ctx, notify: self())
        [keeper] = children(sup) -- others
        keeper_monitor = Process.monitor(keeper)
        pid = kill_and_await_restart(key, pid)

        # The second restart in the window is one too many.
        Process.exit(pid, :kill)
        assert_receive {:wasmbeam_instance_gave_up, ^key, :killed}, 5_000
        assert_receive {:DOWN, ^keeper_monitor, :process, ^keeper, :normal}, 5_000
      end)

    assert log =~ "gave up the instance #{inspect(key)}"
    assert log =~ "failed more than 1 time(s) in 60 s"
    refute_received {:start_attempt, ^key}

    assert InstanceSupervisor.whereis(key) == nil
    assert {:error, %Error{kind: :down}} = Instance.call(InstanceSupervisor.via(key), "nop", [])
    assert InstanceSupervisor.whereis(neighbour) == neighbour_pid
    assert %{active: 1} = DynamicSupervisor.count_children(sup)

    # The key is free again.
    start_reporting(sup, key, ctx)
    assert {:ok, []} = Instance.call(InstanceSupervisor.via(key), "nop", [])
  end

  defp children(sup),
    do: for({_, child, _, _} <- DynamicSupervisor.which_children(sup), do: child)

  test "the restart policy and :notify are checked" do
    assert {:error, %Error{kind: :argument, message: ":max_restarts must be" <> _}} =
             InstanceSupervisor.start_link(max_restarts: -1)

    assert {:error, %Error{kind: :argument, message: ":max_seconds must be" <> _}} =
             InstanceSupervisor.start_link(max_seconds: 0)

    assert {:error, %Error{kind: :argument, message: ":notify must be" <> _}} =
             InstanceSupervisor.start_instance(:k, module: "(module)", notify: "me")
  end

  test "start_instance/2 answers a :down error when its supervisor is not running" do
    assert {:error, %Error{kind: :down}} =
             InstanceSupervisor.start_instance({:nowhere, make_ref()},
               module: "(module)",
               supervisor: __MODULE__.NotRunning
             )
  end
end
