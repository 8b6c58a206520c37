# Host-call round trip (guest -> Elixir -> guest): the time of a call to an
# export that calls an imported identity function once, with the handler in
# the calling process and in a handler process (a GenServer), beside a plain
# `add` call on the same instance, and the native baseline's host calls on
# the same module (bench/native_baseline, scenario host_call): the floor of
# a host call that suspends the guest's fiber, without the BEAM.
#
#     mix run bench/host_call.exs
#
# Environment: as bench/call.exs (BENCH_SAMPLES, BENCH_ROUNDS, ...).

Code.require_file("support/harness.ex", __DIR__)

defmodule Wasmbeam.Bench.HostCall.Handler do
  use GenServer

  def start_link, do: GenServer.start_link(__MODULE__, nil)

  @impl true
  def init(state), do: {:ok, state}

  @impl true
  def handle_call({:wasmbeam_host_call, _name, _caller, [x]}, _from, state),
    do: {:reply, [x], state}
end

defmodule Wasmbeam.Bench.HostCall do
  alias Wasmbeam.Bench.Harness
  alias Wasmbeam.{Func, Instance}

  # `add` as in bench/fixtures/add.wat, and `via_id`, which calls the
  # imported identity function once; the native baseline runs the same file.
  @wat_path Path.expand("fixtures/host_call.wat", __DIR__)

  def run do
    sampling = Harness.sampling()
    IO.puts("bench/host_call.exs: " <> Harness.environment(sampling))

    wat = File.read!(@wat_path)
    {:ok, local} = Wasmbeam.load(wat, imports(fn _caller, x -> x end))
    {:ok, handler} = Wasmbeam.Bench.HostCall.Handler.start_link()
    {:ok, remote} = Wasmbeam.load(wat, imports({:process, handler}))

    {:ok, local_add} = Instance.func(local, "add")
    {:ok, local_via} = Instance.func(local, "via_id")
    {:ok, remote_add} = Instance.func(remote, "add")
    {:ok, remote_via} = Instance.func(remote, "via_id")

    in_process = [target: "<= 1 us", target_ns: 1_000]
    to_process = [target: "<= 4 us", target_ns: 4_000]

    rows = [
      {"in-process: Func.call(add, [1, 2])", fn -> Func.call(local_add, [1, 2]) end,
       expect: {:ok, [3]}, floor: "native untyped_call_async"},
      {"in-process: Func.call(via_id, [7])", fn -> Func.call(local_via, [7]) end,
       [expect: {:ok, [7]}, floor: "in-process: Func.call(add, [1, 2])"] ++ in_process},
      {"in-process: via_id, single calls (K=1)", fn -> Func.call(local_via, [7]) end,
       [expect: {:ok, [7]}, batch: 1, floor: "in-process: Func.call(add, [1, 2])"] ++
         in_process},
      {"handler process: Func.call(add, [1, 2])", fn -> Func.call(remote_add, [1, 2]) end,
       expect: {:ok, [3]}, floor: "native untyped_call_async"},
      {"handler process: Func.call(via_id, [7])", fn -> Func.call(remote_via, [7]) end,
       [expect: {:ok, [7]}, floor: "handler process: Func.call(add, [1, 2])"] ++ to_process},
      {"handler process: via_id, single calls (K=1)", fn -> Func.call(remote_via, [7]) end,
       [expect: {:ok, [7]}, batch: 1, floor: "handler process: Func.call(add, [1, 2])"] ++
         to_process},
      {"elixir: GenServer.call round trip alone",
       fn -> GenServer.call(handler, {:wasmbeam_host_call, "env.id", nil, [7]}) end,
       expect: [7], source: "elixir"}
    ]

    results = Harness.compare(rows, native: {"host_call", @wat_path})
    {native, ours} = Enum.split_with(results, &(&1.source == "native"))

    Harness.print_table(
      "host-call round trip: via_id(x) calls the import env.id(x) -> x once " <>
        "(\"above floor\" of a via_id row = round trip minus a plain add call on the same instance)",
      [{:section, "Wasmbeam"}] ++
        ours ++
        [
          {:section,
           "native baseline: plain Wasmtime, the same module; via_id with env.id as a sync " <>
             "host function, an async one ready at once, and an async one that suspends the " <>
             "guest until the driving loop answers (Wasmbeam's shape without the BEAM)"}
        ] ++ native
    )

    median = fn name -> Enum.find_value(results, &(&1.name == name && &1.median_ns)) end
    plain = median.("native untyped_call_async")

    for {name, label} <- [
          {"native host_call_async_ready", "an async host call answered at once"},
          {"native host_call_async_suspend", "an async host call that suspends the guest"}
        ],
        ns = median.(name),
        ns && plain do
      IO.puts("native floor: #{label}: +#{round(ns - plain)} ns above a plain call")
    end
  end

  defp imports(handler), do: %{"env" => %{"id" => {:fn, [:i32], [:i32], handler}}}
end

Wasmbeam.Bench.HostCall.run()
