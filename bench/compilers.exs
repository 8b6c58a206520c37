# Choosing a compiler: Cranelift (optimising), Winch (baseline) and the
# Pulley interpreter, compared on compile time, first-call latency and
# steady run time, for a small module (bench/fixtures/compute.wat) and a
# large real one (CPython 3.11 for WASI, 20 MB: compile time, and
# instantiation with stub imports, since running it needs WASI), beside
# plain Wasmtime with the same engine settings (bench/native_baseline,
# scenario compilers).
#
#     bin/fetch-wasm python          # once: downloads CPython into .cache/
#     mix run bench/compilers.exs
#
# Environment: BENCH_LARGE_SAMPLES (default 3) compile samples per compiler
# for the large module; BENCH_SAMPLES etc. for the small one (see
# bench/support/harness.ex).

Code.require_file("support/harness.ex", __DIR__)
Code.require_file("support/stub_imports.ex", __DIR__)

defmodule Wasmbeam.Bench.Compilers do
  alias Wasmbeam.Bench.{Harness, StubImports}
  alias Wasmbeam.{Engine, Instance, Module}

  @small Path.expand("fixtures/compute.wat", __DIR__)
  @large Path.expand("../.cache/wasm/python-3.11.3.wasm", __DIR__)
  @strategies [:cranelift, :winch, :pulley]

  def run do
    IO.puts("bench/compilers.exs: " <> Harness.machine())
    small()

    if File.exists?(@large),
      do: large(),
      else: IO.puts("\n#{@large} is missing: run bin/fetch-wasm python for the large module")
  end

  defp small do
    bytes = File.read!(@small)
    sampling = Harness.sampling()
    # Compiling and first calls take milliseconds: fewer samples, single ops.
    slow = [samples: max(div(sampling.samples, 20), 20), batch: 1, warmup_ms: 50]

    rows =
      Enum.flat_map(@strategies, fn strategy ->
        engine = Engine.new!(strategy: strategy)
        module = Module.compile!(engine, bytes)
        instance = Instance.new!(module)

        first_call = fn ->
          {:ok, instance} = Instance.new(module)
          Instance.call(instance, "add", [1, 2])
        end

        [
          {"#{strategy}: compile", fn -> Module.compile(engine, bytes) end,
           slow ++ [floor: "native compile_#{strategy}"]},
          {"#{strategy}: Instance.new + first add(1, 2)", first_call,
           slow ++ [expect: {:ok, [3]}, floor: "native first_call_#{strategy}"]},
          {"#{strategy}: fib(20), steady", fn -> Instance.call(instance, "fib", [20]) end,
           slow ++ [expect: {:ok, [6765]}, floor: "native fib20_#{strategy}"]}
        ]
      end)

    results =
      Harness.compare(rows,
        native: {"compilers", @small},
        samples: max(div(sampling.samples, 20), 20),
        min_batch_ns: 0,
        warmup_ms: 50
      )

    {native, ours} = Enum.split_with(results, &(&1.source == "native"))
    Harness.print_table("small module (bench/fixtures/compute.wat), per compiler", ours ++ native)
  end

  defp large do
    bytes = File.read!(@large)
    samples = String.to_integer(System.get_env("BENCH_LARGE_SAMPLES", "3"))
    one_by_one = [samples: samples, batch: 1, warmup_ms: 0, rounds: 1]
    IO.puts("\nlarge module: #{@large} (#{div(byte_size(bytes), 1024)} KiB)")

    results =
      Enum.flat_map(@strategies, fn strategy ->
        engine = Engine.new!(strategy: strategy)
        module = Module.compile!(engine, bytes)
        stubs = StubImports.for_module(module)

        [
          Harness.measure(
            "#{strategy}: compile",
            fn -> Module.compile(engine, bytes) end,
            one_by_one
          ),
          Harness.measure(
            "#{strategy}: Instance.new (stub WASI imports)",
            fn -> Instance.new(module, stubs) end,
            samples: samples * 20,
            batch: 1,
            warmup_ms: 100
          )
        ]
      end)

    native =
      Harness.native!("compilers", @large, %{
        samples: samples,
        min_batch_ns: 0,
        warmup_ms: 0,
        rounds: 1
      })

    Harness.print_table(
      "CPython 3.11 for WASI, per compiler (#{samples} compile samples)",
      results ++ native
    )
  end
end

Wasmbeam.Bench.Compilers.run()
