# Pools under saturation (issue #16): many more callers than instances.
#
#     mix run bench/pool_saturation.exs
#
# One run measures, side by side:
#
#   * one caller, no contention: checkout + call + checkin through the pool
#     as it is (`Wasmbeam.Pool`) and as it was before the saturated path was
#     redesigned (`Wasmbeam.Bench.PoolV1`: the old code, read from git and
#     compiled under another name by bench/support/previous_pool.ex), beside
#     a bare instance and an instance process;
#   * CALLERS concurrent callers (default "1000,10000"), each making
#     CALLS_PER_CALLER calls (default 100) of `add(1, 2)`, against:
#       - 8 instance processes (caller i calls process i rem 8) and 1,
#         the baselines the pool must match;
#       - a pool of 8 and of 1: the new design (hand-over from the checking-in
#         caller to the oldest waiter) and the old one (every waiting
#         checkout and checkin through the pool process);
#       - the alternative of falling back to each instance's own queue: 8
#         bare instances, caller i calls instance i rem 8 and waits in the
#         store's native queue (`wait: true`) when it is busy.
#     UNCONTENDED=0 skips the one-caller table.
#     Each configuration runs ROUNDS times (default 3), interleaved, so
#     that drift of the shared machine hits them alike; every round is
#     printed, then the median round of each.
#
# Throughput is all calls / wall time; latency is that of single calls,
# waiting included (median, p99, max over all calls of the round).

Code.require_file("support/harness.ex", __DIR__)
Code.require_file("support/previous_pool.ex", __DIR__)
Wasmbeam.Bench.PreviousPool.load!()

defmodule Wasmbeam.Bench.PoolSaturation do
  alias Wasmbeam.Bench.{Harness, PoolV1}
  alias Wasmbeam.{Instance, Module, Pool}

  @wat_path Path.expand("fixtures/add.wat", __DIR__)

  def run do
    sampling = Harness.sampling()
    IO.puts("bench/pool_saturation.exs: " <> Harness.environment(sampling))
    module = Module.compile!(File.read!(@wat_path))

    if System.get_env("UNCONTENDED", "1") != "0", do: uncontended(module)

    callers_list =
      "CALLERS" |> System.get_env("1000,10000") |> String.split(",") |> Enum.map(&int/1)

    calls = "CALLS_PER_CALLER" |> System.get_env("100") |> int()
    rounds = "ROUNDS" |> System.get_env("3") |> int()

    for callers <- callers_list, do: saturated(module, callers, calls, rounds)
  end

  defp uncontended(module) do
    bare = Instance.new!(module)
    {:ok, server} = Instance.start_link(module: module)
    {:ok, _} = Pool.start_link(name: :sat_new_1, module: module, size: 8)
    {:ok, _} = PoolV1.start_link(name: :sat_old_1, module: module, size: 8)
    ok3 = {:ok, [3]}

    rows = [
      {~S|Instance.call(bare, "add", [1, 2])|, fn -> Instance.call(bare, "add", [1, 2]) end,
       expect: ok3, floor: "native untyped_call_async"},
      {~S|Instance.call(process, "add", [1, 2])|, fn -> Instance.call(server, "add", [1, 2]) end,
       expect: ok3, floor: "native untyped_call_async"},
      {"Pool.checkout(pool, fn _ -> :ok end), new", fn -> Pool.checkout(:sat_new_1, &ok/1) end,
       expect: :ok},
      {"Pool.checkout(pool, fn _ -> :ok end), old", fn -> PoolV1.checkout(:sat_old_1, &ok/1) end,
       expect: :ok},
      {~S|Pool.call(pool, "add", [1, 2]), new|, fn -> Pool.call(:sat_new_1, "add", [1, 2]) end,
       expect: ok3, target: "<= 3 us", target_ns: 3_000, floor: "native untyped_call_async"},
      {~S|Pool.call(pool, "add", [1, 2]), old|, fn -> PoolV1.call(:sat_old_1, "add", [1, 2]) end,
       expect: ok3, target: "<= 3 us", target_ns: 3_000, floor: "native untyped_call_async"}
    ]

    results = Harness.compare(rows, native: {"call", @wat_path})
    {native, ours} = Enum.split_with(results, &(&1.source == "native"))

    Harness.print_table(
      "add(i32, i32), one caller, no contention (pool of 8, :reuse)",
      ours ++ Enum.filter(native, &(&1.name == "native untyped_call_async"))
    )
  end

  defp ok(_instance), do: :ok

  defp saturated(module, callers, calls, rounds) do
    IO.puts("\n#{callers} concurrent callers, #{calls} calls each, #{rounds} rounds")

    pool_options = [
      module: module,
      max_waiting: callers,
      checkout_timeout: 120_000
    ]

    tag = System.unique_integer([:positive])
    new8 = :"sat_new8_#{tag}"
    new1 = :"sat_new1_#{tag}"
    old8 = :"sat_old8_#{tag}"
    old1 = :"sat_old1_#{tag}"
    {:ok, _} = Pool.start_link([name: new8, size: 8] ++ pool_options)
    {:ok, _} = Pool.start_link([name: new1, size: 1] ++ pool_options)
    {:ok, _} = PoolV1.start_link([name: old8, size: 8] ++ pool_options)
    {:ok, _} = PoolV1.start_link([name: old1, size: 1] ++ pool_options)

    procs8 =
      for _ <- 1..8 do
        {:ok, pid} = Instance.start_link(module: module, max_queue: callers)
        pid
      end
      |> List.to_tuple()

    {:ok, proc1} = Instance.start_link(module: module, max_queue: callers)
    bare8 = List.to_tuple(for _ <- 1..8, do: Instance.new!(module))

    configs = [
      {"8 instance processes",
       fn i -> fn -> Instance.call(elem(procs8, rem(i, 8)), "add", [1, 2]) end end},
      {"pool of 8, new (hand-over)", fn _ -> fn -> Pool.call(new8, "add", [1, 2]) end end},
      {"pool of 8, old (pool process)", fn _ -> fn -> PoolV1.call(old8, "add", [1, 2]) end end},
      {"8 bare instances, store queues",
       fn i -> fn -> Instance.call(elem(bare8, rem(i, 8)), "add", [1, 2]) end end},
      {"1 instance process", fn _ -> fn -> Instance.call(proc1, "add", [1, 2]) end end},
      {"pool of 1, new (hand-over)", fn _ -> fn -> Pool.call(new1, "add", [1, 2]) end end},
      {"pool of 1, old (pool process)", fn _ -> fn -> PoolV1.call(old1, "add", [1, 2]) end end}
    ]

    per_round =
      for round <- 1..rounds do
        IO.puts("round #{round} (#{Harness.machine()})")

        for {label, make} <- configs do
          result = concurrent(callers, calls, make)
          print(label, result)
          {label, result}
        end
      end

    IO.puts("median round of each (by throughput)")

    for {label, _} <- configs do
      results = per_round |> List.flatten() |> Enum.filter(&(elem(&1, 0) == label))
      sorted = results |> Enum.map(&elem(&1, 1)) |> Enum.sort_by(& &1.throughput)
      print(label, Enum.at(sorted, div(length(sorted), 2)))
    end
  end

  # Starts `callers` processes together; caller i makes `calls` calls of
  # `make.(i)` and times each one.
  defp concurrent(callers, calls, make) do
    parent = self()

    pids =
      for i <- 1..callers do
        fun = make.(i)

        spawn_link(fn ->
          receive do: (:go -> :ok)
          send(parent, {:done, self(), timed(fun, calls, [])})
        end)
      end

    t0 = :erlang.monotonic_time(:nanosecond)
    Enum.each(pids, &send(&1, :go))
    samples = Enum.flat_map(pids, fn pid -> receive do: ({:done, ^pid, s} -> s) end)
    wall = :erlang.monotonic_time(:nanosecond) - t0
    p = Harness.percentiles(samples)
    %{throughput: length(samples) / (wall / 1.0e9), median: p.median, p99: p.p99, max: p.max}
  end

  defp timed(_fun, 0, samples), do: samples

  defp timed(fun, left, samples) do
    t0 = :erlang.monotonic_time(:nanosecond)
    {:ok, [3]} = fun.()
    timed(fun, left - 1, [:erlang.monotonic_time(:nanosecond) - t0 | samples])
  end

  defp print(label, r) do
    IO.puts(
      String.pad_trailing("  #{label}", 36) <>
        String.pad_leading("#{round(r.throughput)} calls/s", 16) <>
        "   median #{Harness.format_ns(r.median)}  p99 #{Harness.format_ns(r.p99)}  " <>
        "max #{Harness.format_ns(r.max)}"
    )
  end

  defp int(text), do: text |> String.trim() |> String.to_integer()
end

Wasmbeam.Bench.PoolSaturation.run()
