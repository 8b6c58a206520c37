# Instance processes and pools: the cost of a call through an instance
# process, of pool checkout + call + checkin (reusing instances, or a fresh
# instance per checkout), beside a call on a held bare instance and plain
# Wasmtime (bench/native_baseline); then 1,000 concurrent callers against a
# pool of 8: throughput and the latency of single calls.
#
#     mix run bench/instance_pool.exs
#
# Environment: the harness's (BENCH_SAMPLES, ...; see bench/README.md), and
# CALLERS (default 1000), CALLS_PER_CALLER (default 200), POOL_SIZE (8).

Code.require_file("support/harness.ex", __DIR__)

defmodule Wasmbeam.Bench.InstancePool do
  alias Wasmbeam.Bench.Harness
  alias Wasmbeam.{Engine, Instance, LinkedModule, Module, Pool}

  @wat_path Path.expand("fixtures/add.wat", __DIR__)

  def run do
    sampling = Harness.sampling()
    IO.puts("bench/instance_pool.exs: " <> Harness.environment(sampling))

    module = Module.compile!(File.read!(@wat_path))
    # 1 MiB of data segments: instantiation maps Wasmtime's copy-on-write
    # memory image instead of copying the bytes.
    data = String.duplicate("wasmbeam", 131_072)

    big =
      Module.compile!(~s|(module (memory (export "memory") 17) (data (i32.const 0) "#{data}"))|)

    linked = LinkedModule.new!(module)
    big_linked = LinkedModule.new!(big)

    pooling =
      Engine.new!(pooling: [total_instances: 2_000, total_memories: 2_000, total_tables: 2_000])

    pooled_linked = LinkedModule.new!(Module.compile!(pooling, File.read!(@wat_path)))

    pooled_big =
      LinkedModule.new!(
        Module.compile!(
          pooling,
          ~s|(module (memory (export "memory") 17) (data (i32.const 0) "#{data}"))|
        )
      )

    bare = Instance.new!(module)
    {:ok, server} = Instance.start_link(module: module)
    {:ok, _} = Pool.start_link(name: :bench_reuse, module: module, size: 8)
    {:ok, _} = Pool.start_link(name: :bench_fresh, module: module, size: 8, policy: :fresh)
    ok3 = {:ok, [3]}

    rows = [
      {~S|Instance.call(bare, "add", [1, 2])|, fn -> Instance.call(bare, "add", [1, 2]) end,
       expect: ok3, floor: "native untyped_call_async"},
      {~S|Instance.call(process, "add", [1, 2])|, fn -> Instance.call(server, "add", [1, 2]) end,
       expect: ok3, target: "<= 4 us", target_ns: 4_000, floor: "native untyped_call_async"},
      {"Pool.checkout(pool, fn _ -> :ok end) (:reuse)",
       fn -> Pool.checkout(:bench_reuse, fn _ -> :ok end) end, expect: :ok},
      {~S|Pool.call(pool, "add", [1, 2]) (:reuse)|,
       fn -> Pool.call(:bench_reuse, "add", [1, 2]) end,
       expect: ok3, target: "<= 3 us", target_ns: 3_000, floor: "native untyped_call_async"},
      {~S|Pool.call(pool, "add", [1, 2]) (:fresh, new instance per checkout)|,
       fn -> Pool.call(:bench_fresh, "add", [1, 2]) end,
       expect: ok3, floor: "native untyped_call_async"},
      {"Instance.new(module)", fn -> Instance.new(module) end,
       target: "<= 10 us", target_ns: 10_000, floor: "native instantiate_async"},
      {"Instance.new(module with 1 MiB of data segments)", fn -> Instance.new(big) end,
       target: "well under 100 us", target_ns: 100_000},
      {"Instance.new(linked module)", fn -> Instance.new(linked) end,
       target: "<= 10 us", target_ns: 10_000, floor: "native instantiate_async"},
      {"Instance.new(linked, 1 MiB of data segments)", fn -> Instance.new(big_linked) end,
       target: "well under 100 us", target_ns: 100_000},
      {"Instance.new(linked) on a pooling engine", fn -> Instance.new(pooled_linked) end,
       target: "<= 10 us", target_ns: 10_000, floor: "native instantiate_async"},
      {"Instance.new(linked, 1 MiB of data) on a pooling engine",
       fn -> Instance.new(pooled_big) end, target: "well under 100 us", target_ns: 100_000}
    ]

    results = Harness.compare(rows, native: {"all", @wat_path})
    wanted = ["native untyped_call_async", "native instantiate_async"]
    {native, ours} = Enum.split_with(results, &(&1.source == "native"))

    Harness.print_table(
      "add(i32, i32) from bench/fixtures/add.wat, one caller",
      ours ++ Enum.filter(native, &(&1.name in wanted))
    )

    callers = env_int("CALLERS", 1_000)
    calls = env_int("CALLS_PER_CALLER", 200)
    size = env_int("POOL_SIZE", 8)
    IO.puts("\n#{callers} concurrent callers, #{calls} calls each (#{Harness.machine()})")

    for policy <- [:reuse, :fresh] do
      name = :"bench_concurrent_#{policy}"

      {:ok, _} =
        Pool.start_link(
          name: name,
          module: module,
          size: size,
          max_waiting: callers,
          checkout_timeout: 60_000,
          policy: policy
        )

      concurrent("pool of #{size}, #{policy}", callers, calls, fn ->
        Pool.call(name, "add", [1, 2])
      end)
    end

    {:ok, one} = Instance.start_link(module: module, max_queue: callers)

    concurrent("one instance process", callers, calls, fn ->
      Instance.call(one, "add", [1, 2])
    end)
  end

  # Starts `callers` processes together; each makes `calls` calls and times
  # every one. Prints throughput (all calls / wall time) and the latency
  # percentiles of single calls (waiting for an instance included).
  defp concurrent(label, callers, calls, fun) do
    parent = self()

    pids =
      for _ <- 1..callers do
        spawn_link(fn ->
          receive do: (:go -> :ok)

          samples =
            for _ <- 1..calls do
              t0 = :erlang.monotonic_time(:nanosecond)
              {:ok, [3]} = fun.()
              :erlang.monotonic_time(:nanosecond) - t0
            end

          send(parent, {:done, self(), samples})
        end)
      end

    t0 = :erlang.monotonic_time(:nanosecond)
    Enum.each(pids, &send(&1, :go))
    samples = Enum.flat_map(pids, fn pid -> receive do: ({:done, ^pid, s} -> s) end)
    wall = :erlang.monotonic_time(:nanosecond) - t0
    p = Harness.percentiles(samples)

    IO.puts(
      String.pad_trailing("  #{label}", 34) <>
        "#{round(length(samples) / (wall / 1.0e9))} calls/s   " <>
        "latency median #{Harness.format_ns(p.median)}  p99 #{Harness.format_ns(p.p99)}  " <>
        "max #{Harness.format_ns(p.max)}"
    )
  end

  defp env_int(name, default),
    do: name |> System.get_env(Integer.to_string(default)) |> String.to_integer()
end

Wasmbeam.Bench.InstancePool.run()
