# Component calls through Wasmbeam beside plain Wasmtime calling the same
# component (bench/native_baseline, scenario `component`), and the
# core-module `add` call with its own native floor, in one run (issue #13):
#
#   - greet(p: record { name: string, age: u32 }) -> string
#   - echo-bytes(b: list<u8>) -> list<u8> with 1 MiB (target: under 1 ms)
#   - run(x: u32) -> u32, which calls the imported log(msg: u32) -> u32
#     once (the handler in the calling process)
#   - instantiating the component (a new store each time)
#   - add(u32, u32) -> u32 as a component and as a core module
#
# and the issue's target: a component call's overhead over its native
# baseline within 2x of the core-module call's overhead over its own.
#
#     mix run bench/components.exs
#
# Environment: as bench/call.exs (BENCH_SAMPLES, BENCH_ROUNDS, ...). See
# bench/README.md for what each row means; results in
# bench/RESULTS-components.md.

Code.require_file("support/harness.ex", __DIR__)

defmodule Wasmbeam.Bench.Components do
  alias Wasmbeam.Bench.Harness
  import Bitwise, only: [<<<: 2]

  alias Wasmbeam.{Component, Instance, Module}

  @component_path Path.expand("fixtures/component.wat", __DIR__)
  @core_path Path.expand("fixtures/add.wat", __DIR__)
  @echo_bytes 1 <<< 20
  @name "Ada Lovelace"

  def run do
    sampling = Harness.sampling()
    IO.puts("bench/components.exs: " <> Harness.environment(sampling))

    module = Module.compile!(File.read!(@core_path))
    core = Instance.new!(module)

    component = Component.compile!(File.read!(@component_path))
    imports = %{"log" => fn _caller, msg -> msg end}
    instance = Component.Instance.new!(component, imports)

    person = %{name: @name, age: 36}
    bytes = :binary.list_to_bin(for i <- 0..(@echo_bytes - 1), do: rem(i, 251))

    calls = [
      {~S|core: Instance.call(instance, "add", [1, 2])|,
       fn -> Instance.call(core, "add", [1, 2]) end,
       expect: {:ok, [3]}, floor: "native untyped_call_async"},
      {~S|component: call(instance, "add", [1, 2])|,
       fn -> Component.Instance.call(instance, "add", [1, 2]) end,
       expect: {:ok, 3}, floor: "native component_add_call_async"},
      {~S|component: call(instance, "greet", [%{name: "Ada Lovelace", age: 36}])|,
       fn -> Component.Instance.call(instance, "greet", [person]) end,
       expect: {:ok, @name}, floor: "native component_greet_call_async"},
      {~S|component: call(instance, "echo-bytes", [1 MiB])|,
       fn -> Component.Instance.call(instance, "echo-bytes", [bytes]) end,
       expect: {:ok, bytes},
       target: "<= 1 ms",
       target_ns: 1_000_000,
       floor: "native component_echo_1mib_typed_call_async"},
      {~S|component: call(instance, "run", [7]) (log/1 in this process)|,
       fn -> Component.Instance.call(instance, "run", [7]) end,
       expect: {:ok, 7}, floor: "native component_run_host_suspend"}
    ]

    instantiation = [
      {"core: Instance.new(module)", fn -> Instance.new(module) end,
       floor: "native instantiate_async"},
      {~S|component: Component.Instance.new(component, %{"log" => fun})|,
       fn -> Component.Instance.new(component, imports) end,
       floor: "native component_instantiate_async"}
    ]

    results =
      Harness.compare(calls ++ instantiation,
        native: [{"component", @component_path}, {"all", @core_path}]
      )

    by_name = Map.new(results, &{&1.name, &1})
    row = &Map.fetch!(by_name, &1)
    instantiate? = &(&1.name =~ ~r/instantiate|instance_pre|Instance.new/)
    {instantiate_rows, call_rows} = Enum.split_with(results, instantiate?)
    {native_calls, wasmbeam_calls} = Enum.split_with(call_rows, &(&1.source == "native"))

    {native_instantiate, wasmbeam_instantiate} =
      Enum.split_with(instantiate_rows, &(&1.source == "native"))

    Harness.print_table(
      "components (bench/fixtures/component.wat) and the core add (bench/fixtures/add.wat): " <>
        "Wasmbeam (in the calling process) and plain Wasmtime",
      [{:section, "calls"}] ++
        wasmbeam_calls ++
        [{:section, "native calls"}] ++
        native_calls ++
        [{:section, "instantiate (a new store each time)"}] ++
        wasmbeam_instantiate ++ native_instantiate
    )

    core = row.(~S|core: Instance.call(instance, "add", [1, 2])|)
    core_native = row.("native untyped_call_async")
    core_overhead = core.median_ns - core_native.median_ns

    IO.puts(
      "\nissue #13 target: a component call's overhead over its native baseline " <>
        "<= 2x the core call's overhead over its own " <>
        "(core: #{Harness.format_ns(core.median_ns)} - #{Harness.format_ns(core_native.median_ns)}" <>
        " native untyped_call_async = #{Harness.format_ns(core_overhead)})"
    )

    # The 1 MiB echo is judged by its own target (a time, not an overhead).
    for %{source: "wasmbeam", floor: floor} = r <- wasmbeam_calls,
        r != core,
        not Map.has_key?(r, :target_ns) do
      native = row.(floor)
      overhead = r.median_ns - native.median_ns
      ratio = overhead / core_overhead
      verdict = if ratio <= 2.0, do: "ok", else: "MISS"

      IO.puts(
        "  #{r.name}: #{Harness.format_ns(r.median_ns)} - #{Harness.format_ns(native.median_ns)} " <>
          "#{floor} = #{Harness.format_ns(overhead)}, " <>
          "#{:erlang.float_to_binary(ratio, decimals: 1)}x the core overhead #{verdict}"
      )
    end

    echo = row.(~S|component: call(instance, "echo-bytes", [1 MiB])|)
    echo_ratio = echo.median_ns / echo.target_ns

    IO.puts(
      "\n1 MiB echo: median #{Harness.format_ns(echo.median_ns)}, p99 " <>
        "#{Harness.format_ns(echo.p99_ns)} against #{echo.target}: " <>
        if(echo_ratio <= 1.0,
          do: "ok",
          else: "MISS by #{round((echo_ratio - 1) * 100)} %"
        )
    )

    run = row.(~S|component: call(instance, "run", [7]) (log/1 in this process)|)
    add = row.(~S|component: call(instance, "add", [1, 2])|)

    native_trip = fn run, add -> Harness.format_ns(row.(run).median_ns - row.(add).median_ns) end

    IO.puts(
      "\nhost-call round trip, run(7) minus add(1, 2) (medians): Wasmbeam " <>
        Harness.format_ns(run.median_ns - add.median_ns) <>
        "; native, dynamic (minus component_add_call_async): log ready at once " <>
        native_trip.("native component_run_host_ready", "native component_add_call_async") <>
        ", log suspending the guest " <>
        native_trip.("native component_run_host_suspend", "native component_add_call_async") <>
        "; native, typed (minus component_add_typed_call_async): " <>
        native_trip.("native component_run_host_typed", "native component_add_typed_call_async")
    )

    core_new = row.("core: Instance.new(module)")
    comp_new = row.(~S|component: Component.Instance.new(component, %{"log" => fun})|)

    IO.puts(
      "instantiation overhead over native (medians): core " <>
        Harness.format_ns(core_new.median_ns - row.("native instantiate_async").median_ns) <>
        ", component " <>
        Harness.format_ns(
          comp_new.median_ns - row.("native component_instantiate_async").median_ns
        )
    )
  end
end

Wasmbeam.Bench.Components.run()
