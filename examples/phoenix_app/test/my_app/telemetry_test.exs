defmodule MyApp.TelemetryTest do
  # Wasmbeam's :telemetry events, with the real :telemetry that Phoenix and
  # Oban bring, seen next to Phoenix's and Oban's own events: handlers are
  # attached, and names, order, measurements and metadata are asserted.
  use ExUnit.Case, async: false

  import MyApp.Test.HTTP
  import MyApp.Test.Jobs

  @events [
    [:phoenix, :endpoint, :start],
    [:phoenix, :endpoint, :stop],
    [:phoenix, :router_dispatch, :start],
    [:phoenix, :router_dispatch, :stop],
    [:oban, :job, :start],
    [:oban, :job, :stop],
    [:wasmbeam, :call, :start],
    [:wasmbeam, :call, :stop],
    [:wasmbeam, :call, :trap],
    [:wasmbeam, :call, :timeout],
    [:wasmbeam, :pool, :overflow],
    [:wasmbeam, :pool, :overloaded],
    [:wasmbeam, :module, :compile, :start],
    [:wasmbeam, :module, :compile, :stop]
  ]

  setup do
    Wasmbeam.Telemetry.call_events(true)
    test = self()
    id = "telemetry-test-#{System.unique_integer()}"

    :telemetry.attach_many(
      id,
      @events,
      fn event, measurements, metadata, _ ->
        send(test, {:event, event, measurements, metadata, self()})
      end,
      nil
    )

    on_exit(fn ->
      :telemetry.detach(id)
      Wasmbeam.Telemetry.call_events(false)
    end)
  end

  # The events the process `pid` emitted, in order, up to and including `last`.
  defp events_of(pid, last, acc \\ []) do
    receive do
      {:event, ^last = event, m, meta, ^pid} -> Enum.reverse([{event, m, meta} | acc])
      {:event, event, m, meta, ^pid} -> events_of(pid, last, [{event, m, meta} | acc])
    after
      10_000 -> flunk("no #{inspect(last)} from #{inspect(pid)}; got #{inspect(acc)}")
    end
  end

  test "a request whose guest traps: Wasmbeam's call span inside Phoenix's, in the request's process" do
    assert {422, %{"error" => "trap"}} = get_json("/api/div/7/0")
    assert_receive {:event, [:phoenix, :endpoint, :start], _, _, request}, 5_000
    events = events_of(request, [:phoenix, :router_dispatch, :stop])

    # Plug.Telemetry's :stop fires as the response is sent, inside the
    # controller; the router's :stop when the controller returns.
    assert Enum.map(events, &elem(&1, 0)) == [
             [:phoenix, :router_dispatch, :start],
             [:wasmbeam, :call, :start],
             [:wasmbeam, :call, :trap],
             [:wasmbeam, :call, :stop],
             [:phoenix, :endpoint, :stop],
             [:phoenix, :router_dispatch, :stop]
           ]

    [
      {_, %{route: "/api/div/:a/:b"}},
      {call_start, start_meta},
      {_, trap_meta},
      {call_stop, stop_meta}
    ] =
      for {_event, m, meta} <- Enum.take(events, 4), do: {m, meta}

    assert %{system_time: system_time, monotonic_time: _} = call_start
    assert is_integer(system_time)
    assert %{duration: duration, monotonic_time: _} = call_stop
    assert is_integer(duration) and duration > 0

    assert %{export: "div", instance: %Wasmbeam.Instance{}, module: %Wasmbeam.Module{}} =
             start_meta

    assert %{export: "div", error: %Wasmbeam.Error{kind: :trap}} = trap_meta
    assert %{export: "div", error: %Wasmbeam.Error{kind: :trap} = error} = stop_meta
    assert Exception.message(error) =~ "divide by zero"
    assert start_meta.instance == stop_meta.instance
  end

  test "a request past its deadline emits [:wasmbeam, :call, :timeout]" do
    assert {504, _} = get_json("/api/spin?timeout=20")
    assert_receive {:event, [:phoenix, :endpoint, :start], _, _, request}, 5_000
    events = events_of(request, [:phoenix, :router_dispatch, :stop])
    assert {_, %{system_time: _}, meta} = List.keyfind(events, [:wasmbeam, :call, :timeout], 0)
    assert %{export: "spin", error: %Wasmbeam.Error{kind: :timeout}} = meta
  end

  test "overflow and overload are emitted by the pool process" do
    pool = Process.whereis(MyApp.Sandbox)
    %{size: size, max_overflow: overflow} = Wasmbeam.Pool.stats!(MyApp.Sandbox)

    hold = fn hold, n ->
      if n > 0,
        do: Wasmbeam.Pool.checkout(MyApp.Sandbox, fn _ -> hold.(hold, n - 1) end),
        else: :held
    end

    assert hold.(hold, size + 1) == :held

    assert_receive {:event, [:wasmbeam, :pool, :overflow],
                    %{instances: instances, system_time: _},
                    %{pool: MyApp.Sandbox, pool_pid: ^pool}, ^pool}

    assert instances == size + 1
    assert overflow >= 1
  end

  test "a job snoozed on a full pool: [:wasmbeam, :pool, :overloaded] between Oban's start and stop" do
    forward_job_events(MyApp.Workers.RunPlugin)
    MyApp.Repo.delete_all(Oban.Job)
    pool = Process.whereis(MyApp.JobPlugins)

    Wasmbeam.Pool.checkout(MyApp.JobPlugins, fn _ ->
      Wasmbeam.Pool.checkout(MyApp.JobPlugins, fn _ ->
        %{"export" => "fib", "args" => [5]} |> MyApp.Workers.RunPlugin.new() |> Oban.insert!()
        assert_receive {:job, :stop, _id, _, %{state: :snoozed, result: {:snooze, 10}}}, 10_000
      end)
    end)

    assert_receive {:event, [:wasmbeam, :pool, :overloaded], %{instances: 2, waiting: 0},
                    %{pool: MyApp.JobPlugins, pool_pid: ^pool}, ^pool}

    MyApp.Repo.delete_all(Oban.Job)
  end

  test "a job that succeeds: Wasmbeam's call span inside Oban's job span, in the job's process" do
    MyApp.Repo.delete_all(Oban.Job)
    job = %{"export" => "fib", "args" => [10]} |> MyApp.Workers.RunPlugin.new() |> Oban.insert!()

    assert_receive {:event, [:oban, :job, :start], _, %{job: %{id: id}}, worker}, 10_000
    assert id == job.id
    events = events_of(worker, [:wasmbeam, :call, :stop])

    assert [[:wasmbeam, :call, :start], [:wasmbeam, :call, :stop]] ==
             Enum.map(events, &elem(&1, 0))

    assert {_, %{duration: _}, %{export: "fib"} = meta} = List.last(events)
    refute Map.get(meta, :error)

    # Oban emits its :stop from the job's process too, with the result.
    assert_receive {:event, [:oban, :job, :stop], %{duration: _},
                    %{state: :success, result: {:ok, 55}}, ^worker},
                   10_000
  end

  test "compiling a plugin is a span with the module in its :stop metadata" do
    Wasmbeam.Module.compile!(File.read!(MyApp.PluginConfig.path("kernels.wat")))
    me = self()

    assert_receive {:event, [:wasmbeam, :module, :compile, :start], %{system_time: _},
                    %{byte_size: size}, ^me}

    assert size == byte_size(File.read!(MyApp.PluginConfig.path("kernels.wat")))

    assert_receive {:event, [:wasmbeam, :module, :compile, :stop], %{duration: _},
                    %{module: %Wasmbeam.Module{} = module}, ^me}

    assert {"fib", {:func, [:i64], [:i64]}} in Wasmbeam.Module.exports(module)
  end
end
