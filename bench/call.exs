# Cost of calling a tiny export and of instantiating a small module, through
# Wasmbeam and through plain Wasmtime (bench/native_baseline), in one run.
#
#     mix run bench/call.exs
#
# Environment: BENCH_SAMPLES, BENCH_ROUNDS, BENCH_MIN_BATCH_NS, BENCH_WARMUP_MS (see
# bench/support/harness.ex), BENCH_NO_CARGO=1 / BENCH_CARGO=1 to skip / force
# `cargo build` of the baseline. See bench/README.md for what each row means.

Code.require_file("support/harness.ex", __DIR__)

defmodule Wasmbeam.Bench.Call do
  alias Wasmbeam.Bench.Harness
  alias Wasmbeam.{Driver, Func, Global, Instance, Module, Native, Store}

  @wat_path Path.expand("fixtures/add.wat", __DIR__)
  @probe_wat ~S[(module (global (export "g") i32 (i32.const 7)))]

  def run do
    sampling = Harness.sampling()
    IO.puts("bench/call.exs: " <> Harness.environment(sampling))

    module = Module.compile!(File.read!(@wat_path))
    instance = Instance.new!(module)
    {:ok, add} = Instance.func(instance, "add")
    {:ok, global} = @probe_wat |> Module.compile!() |> Instance.new!() |> Instance.global("g")
    call_target = [target: "<= 1 us", target_ns: 1_000]
    ok3 = {:ok, [3]}

    {:ok, native_options} = Wasmbeam.CallOptions.to_native([])

    calls = [
      {"elixir: local function call", fn -> local_add(1, 2) end, expect: 3, source: "elixir"},
      {"NIF floor: Global.get (sync NIF, store lock)", fn -> Global.get(global) end,
       expect: {:ok, 7}},
      # Internal API (the NIF and the driver), which may change under the
      # bench: the row is skipped, not the bench, if it does.
      {"Native.func_call (no option parsing)",
       fn ->
         Native.func_call(add.ref, add.store, [1, 2], native_options) |> Driver.finish(add.store)
       end, expect: ok3, optional: true, floor: "native wasmbeam_shaped_call"},
      {"Func.call(add, [1, 2])", fn -> Func.call(add, [1, 2]) end,
       [expect: ok3, floor: "native untyped_call_async"] ++ call_target},
      {~S|Instance.call(instance, "add", [1, 2])|,
       fn -> Instance.call(instance, "add", [1, 2]) end,
       [expect: ok3, floor: "native untyped_call_async"] ++ call_target},
      {"Instance.call(..., timeout: 1000)",
       fn -> Instance.call(instance, "add", [1, 2], timeout: 1000) end,
       [expect: ok3, floor: "native untyped_call_async"] ++ call_target},
      {"Func.call, single calls (K=1)", fn -> Func.call(add, [1, 2]) end,
       [expect: ok3, batch: 1, floor: "native untyped_call_async"] ++ call_target}
    ]

    instantiation = [
      {"Store.new()", fn -> Store.new() end, []},
      {"Instance.new(module)", fn -> Instance.new(module) end,
       target: "<= 10 us (linked module)", target_ns: 10_000, floor: "native instantiate_async"}
    ]

    results = Harness.compare(calls ++ instantiation, native: {"all", @wat_path})
    instantiate? = &(&1.name =~ ~r/instantiate|Instance.new|Store.new/)
    {instantiate_rows, call_rows} = Enum.split_with(results, instantiate?)
    {native_calls, wasmbeam_calls} = Enum.split_with(call_rows, &(&1.source == "native"))

    {native_instantiate, wasmbeam_instantiate} =
      Enum.split_with(instantiate_rows, &(&1.source == "native"))

    Harness.print_table(
      "add(i32, i32) from bench/fixtures/add.wat: Wasmbeam (in the calling process) and plain Wasmtime",
      [{:section, "call add(1, 2)"}] ++
        wasmbeam_calls ++
        native_calls ++
        [{:section, "instantiate the module (a new store each time)"}] ++
        wasmbeam_instantiate ++ native_instantiate
    )
  end

  defp local_add(a, b), do: a + b
end

Wasmbeam.Bench.Call.run()
