# What :telemetry costs a call of a tiny export: `Instance.call` and
# `Func.call` of `add(1, 2)` with :telemetry not loaded, loaded with
# nobody listening (per-call spans off: the default), per-call spans on
# with no handler, and per-call spans on with a handler attached.
#
#     mix run bench/telemetry.exs
#
# :telemetry is not a dependency of Wasmbeam: the bench builds the real
# one (1.4.1) from ../shared/vendor into .cache/, as the tests do
# (test/support/vendored_telemetry.ex), and loads and unloads it between
# variants. The variant is global to the VM, so the variants cannot be
# interleaved row by row like the rows of one table: each pass measures
# every variant in turn (each variant an interleaved `Harness.compare/2`
# of its rows), `BENCH_PASSES` passes (default 4), each starting with the
# next variant, and the statistics are over the samples of all passes.
# Every variant also measures a reference row whose path has no telemetry
# check at all (the `func_call` NIF and the driver), to show how fast the
# machine ran while it was measured.
# No native baseline: it does not change with telemetry (bench/call.exs
# has it).
#
# Environment: BENCH_PASSES, and BENCH_SAMPLES, BENCH_ROUNDS,
# BENCH_MIN_BATCH_NS, BENCH_WARMUP_MS (see bench/support/harness.ex), which
# are split over the passes.

Code.require_file("support/harness.ex", __DIR__)
Code.require_file("../test/support/vendored_telemetry.ex", __DIR__)

defmodule Wasmbeam.Bench.Telemetry do
  # :telemetry is loaded at run time, from .cache/.
  @compile {:no_warn_undefined, :telemetry}

  alias Wasmbeam.Bench.Harness
  alias Wasmbeam.{Driver, Func, Instance, Module, Native}
  alias Wasmbeam.Test.VendoredTelemetry

  @wat_path Path.expand("fixtures/add.wat", __DIR__)
  @handler_id "bench-telemetry-handler"
  @call_events for suffix <- [:start, :stop, :exception], do: [:wasmbeam, :call, suffix]

  @variants [
    {"not loaded", :absent},
    {"loaded, per-call spans off (default)", :loaded},
    {"spans on, no handler", :spans},
    {"spans on, handler attached", :handler}
  ]

  def run do
    passes = String.to_integer(System.get_env("BENCH_PASSES", "4"))
    sampling = Harness.sampling()

    per_pass = [
      samples: max(div(sampling.samples, passes), 1),
      rounds: max(div(sampling.rounds, passes), 1)
    ]

    IO.puts(
      "bench/telemetry.exs: " <>
        Harness.environment(sampling) <> ", split over #{passes} passes of every variant"
    )

    # Stopping :telemetry between variants is logged at :notice level.
    Logger.configure(level: :warning)

    module = Module.compile!(File.read!(@wat_path))
    instance = Instance.new!(module)
    {:ok, add} = Instance.func(instance, "add")
    {:ok, native_options} = Wasmbeam.CallOptions.to_native([])
    counter = :counters.new(1, [:write_concurrency])
    ok3 = {:ok, [3]}

    rows = [
      {~S|Instance.call(instance, "add", [1, 2])|,
       fn -> Instance.call(instance, "add", [1, 2]) end, expect: ok3},
      {"Func.call(add, [1, 2])", fn -> Func.call(add, [1, 2]) end, expect: ok3},
      {"reference: Native.func_call + Driver.finish",
       fn ->
         Native.func_call(add.ref, add.store, [1, 2], native_options) |> Driver.finish(add.store)
       end, expect: ok3}
    ]

    samples =
      for pass <- 1..passes, {label, variant} <- rotate(@variants, pass), reduce: %{} do
        acc ->
          enter(variant, counter)

          results =
            Harness.compare(
              for({name, fun, options} <- rows, do: {name, fun, [keep_samples: true] ++ options}),
              per_pass
            )

          leave(variant)

          Enum.reduce(results, acc, fn result, acc ->
            Map.update(acc, {label, result.name}, [result], &[result | &1])
          end)
      end

    handled = :counters.get(counter, 1)
    primitives = primitives(per_pass)
    VendoredTelemetry.unload()

    table =
      for {name, _fun, _options} <- rows do
        [{:section, name}] ++
          for {label, variant} <- @variants do
            pooled(label, samples[{label, name}], floor(variant, name))
          end
      end

    Harness.print_table(
      "add(i32, i32) from bench/fixtures/add.wat, in the calling process; " <>
        "'above floor': against the same row with :telemetry not loaded",
      List.flatten(table)
    )

    IO.puts("handler calls during the run: #{handled}")

    Harness.print_table(
      "what a span is made of, on this machine (:telemetry loaded, no handler)",
      primitives
    )
  end

  # A span is two `:telemetry.execute/3` (a handler lookup each) and three
  # clock reads, whose cost depends on the machine's clock source.
  defp primitives(per_pass) do
    load!()
    metadata = %{export: "add", instance: nil, module: nil}

    Harness.compare(
      [
        {":telemetry.execute/3", fn -> :telemetry.execute([:bench, :stop], %{}, metadata) end,
         []},
        {":telemetry.span/3 of a function that returns",
         fn -> :telemetry.span([:bench], metadata, fn -> {:ok, metadata} end) end, []},
        {"System.monotonic_time()", fn -> System.monotonic_time() end, []},
        {"System.system_time()", fn -> System.system_time() end, []},
        {":persistent_term.get/2 (the per-call check)",
         fn -> :persistent_term.get({Wasmbeam.Telemetry, :state}, nil) end, []}
      ],
      per_pass
    )
  end

  # Each pass starts with another variant, so that none is always measured
  # first (right after the machine did something else) or last.
  defp rotate(list, pass) do
    {head, tail} = Enum.split(list, rem(pass - 1, length(list)))
    tail ++ head
  end

  defp floor(:absent, _name), do: nil
  defp floor(_variant, name), do: "not loaded: " <> name

  # Each variant is entered from a VM where :telemetry is loaded, per-call
  # spans off, no handler attached (or, before the first, not loaded).
  defp enter(:absent, _counter) do
    VendoredTelemetry.unload()
    :absent = Wasmbeam.Telemetry.refresh()
  end

  defp enter(:loaded, _counter), do: load!()

  defp enter(:spans, _counter) do
    load!()
    :calls = Wasmbeam.Telemetry.call_events(true)
  end

  defp enter(:handler, counter) do
    load!()
    :calls = Wasmbeam.Telemetry.call_events(true)
    :ok = :telemetry.attach_many(@handler_id, @call_events, &__MODULE__.handle/4, counter)
  end

  defp leave(:handler) do
    :telemetry.detach(@handler_id)
    Wasmbeam.Telemetry.call_events(false)
  end

  defp leave(_variant), do: Wasmbeam.Telemetry.call_events(false)

  defp load! do
    :ok = VendoredTelemetry.load()
    :loaded = Wasmbeam.Telemetry.refresh()
  end

  # What a metrics handler does at the least: count.
  def handle(_event, _measurements, _metadata, counter), do: :counters.add(counter, 1, 1)

  defp pooled(label, results, floor) do
    per_op = Enum.flat_map(results, & &1.per_op)
    stats = Harness.percentiles(per_op)
    batches = results |> Enum.map(& &1.batch) |> Enum.uniq() |> Enum.sort()

    row = %{
      name: "#{label}: #{hd(results).name}",
      source: "wasmbeam",
      median_ns: stats.median,
      p99_ns: stats.p99,
      min_ns: stats.min,
      ops_per_s: Enum.sum(Enum.map(results, & &1.ops_per_s)) / length(results),
      batch: Enum.join(Enum.uniq([hd(batches), List.last(batches)]), "-"),
      samples: stats.n
    }

    if floor, do: Map.put(row, :floor, floor), else: row
  end
end

Wasmbeam.Bench.Telemetry.run()
