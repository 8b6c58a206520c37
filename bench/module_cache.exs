# Cold start: compiling a module against loading it from Wasmbeam.ModuleCache
# (memory-mapped, after the keyed-hash check), for a small module and a large
# real one (CPython 3.11 for WASI, 20 MB), beside plain Wasmtime's
# `Module::new` / `Module::deserialize_file` / `Module::deserialize`
# (bench/native_baseline, scenario cold_start), plus the memory each way
# costs and the first call (or instantiation) after a load.
#
#     bin/fetch-wasm python          # once: downloads CPython into .cache/
#     mix run bench/module_cache.exs
#
# Environment: BENCH_LARGE_SAMPLES (default 5) samples for the large module,
# whose compilation takes seconds; the small module uses the harness's
# settings (BENCH_SAMPLES etc., see bench/support/harness.ex).

Code.require_file("support/harness.ex", __DIR__)
Code.require_file("support/stub_imports.ex", __DIR__)

defmodule Wasmbeam.Bench.ModuleCache do
  alias Wasmbeam.Bench.Harness
  alias Wasmbeam.{Engine, Error, Instance, Module, ModuleCache}

  @small Path.expand("fixtures/add.wat", __DIR__)
  @large Path.expand("../.cache/wasm/python-3.11.3.wasm", __DIR__)

  def run do
    dir = Path.join(System.tmp_dir!(), "wasmbeam-bench-cache-#{System.pid()}")
    File.rm_rf!(dir)
    # A disk-only cache (no memory tier) to time disk hits, and a normal one
    # for memory hits, on the same directory.
    {:ok, _} = ModuleCache.start_link(name: :bench_disk, dir: dir, memory_entries: 0)
    {:ok, _} = ModuleCache.start_link(name: :bench_memory, dir: dir)
    IO.puts("bench/module_cache.exs: " <> Harness.machine())

    small(dir)

    if File.exists?(@large),
      do: large(dir),
      else: IO.puts("\n#{@large} is missing: run bin/fetch-wasm python for the large module")

    File.rm_rf!(dir)
  end

  defp small(_dir) do
    engine = Engine.default()
    bytes = File.read!(@small)
    {:ok, _} = ModuleCache.compile(engine, bytes, cache: :bench_disk)
    ok3 = {:ok, [3]}

    first_call = fn module ->
      {:ok, instance} = Instance.new(module)
      Instance.call(instance, "add", [1, 2])
    end

    rows = [
      {"Module.compile (no cache)", fn -> Module.compile(engine, bytes) end,
       floor: "native compile"},
      {"ModuleCache.compile, disk hit (mmap)",
       fn -> ModuleCache.compile(engine, bytes, cache: :bench_disk) end,
       floor: "native deserialize_file"},
      {"ModuleCache.compile, memory hit",
       fn -> ModuleCache.compile(engine, bytes, cache: :bench_memory) end, []},
      {"compile + Instance.new + first add(1, 2)",
       fn -> first_call.(Module.compile!(engine, bytes)) end, expect: ok3},
      {"disk hit + Instance.new + first add(1, 2)",
       fn ->
         first_call.(Error.unwrap!(ModuleCache.compile(engine, bytes, cache: :bench_disk)))
       end, expect: ok3}
    ]

    results = Harness.compare(rows, native: {"cold_start", @small})
    Harness.print_table("small module (bench/fixtures/add.wat): compile vs cache", results)
    ratio(results, "Module.compile (no cache)", "ModuleCache.compile, disk hit (mmap)")
  end

  defp large(_dir) do
    engine = Engine.default()
    bytes = File.read!(@large)
    samples = String.to_integer(System.get_env("BENCH_LARGE_SAMPLES", "5"))
    one_by_one = [samples: samples, batch: 1, warmup_ms: 0, rounds: 1]

    IO.puts("\nlarge module: #{@large} (#{div(byte_size(bytes), 1024)} KiB)")
    {compile_rss, module} = rss_growth(fn -> Module.compile!(engine, bytes) end)
    {:ok, _} = ModuleCache.compile(engine, bytes, cache: :bench_disk)

    artifact =
      Path.join([
        ModuleCache.stats(:bench_disk).dir,
        "modules",
        ModuleCache.entry(engine, bytes) <> ".cwasm"
      ])

    {load_rss, loaded} =
      rss_growth(fn -> Error.unwrap!(ModuleCache.compile(engine, bytes, cache: :bench_disk)) end)

    stubs = Wasmbeam.Bench.StubImports.for_module(module)

    rows = [
      {"Module.compile (no cache)", fn -> Module.compile(engine, bytes) end, one_by_one},
      {"ModuleCache.compile, disk hit (mmap)",
       fn -> ModuleCache.compile(engine, bytes, cache: :bench_disk) end,
       [samples: samples * 10, batch: 1, warmup_ms: 100]},
      {"ModuleCache.compile, memory hit",
       fn -> ModuleCache.compile(engine, bytes, cache: :bench_memory) end,
       [samples: samples * 10, batch: 1, warmup_ms: 100]},
      {"ModuleCache.entry (hash of the bytes)", fn -> ModuleCache.entry(engine, bytes) end,
       [samples: samples * 10, batch: 1, warmup_ms: 100]},
      {"Instance.new with stub WASI imports, after a disk hit",
       fn -> Instance.new(loaded, stubs) end, [samples: samples * 10, batch: 1, warmup_ms: 100]}
    ]

    results =
      for {name, fun, options} <- rows do
        Harness.measure(name, fun, options)
      end

    native =
      Harness.native!("cold_start", @large, %{
        samples: samples,
        min_batch_ns: 0,
        warmup_ms: 0,
        rounds: 1
      })

    Harness.print_table(
      "CPython 3.11 for WASI: compile vs cache (#{samples} compile samples, #{samples * 10} load samples)",
      results ++ native
    )

    ratio(results, "Module.compile (no cache)", "ModuleCache.compile, disk hit (mmap)")
    ratio(native, "native compile", "native deserialize_file")
    mib = fn bytes -> Float.round(bytes / 1_048_576, 1) end
    IO.puts("artifact on disk: #{mib.(File.stat!(artifact).size)} MiB")

    IO.puts(
      "resident memory growth: compile #{mib.(compile_rss)} MiB, disk hit #{mib.(load_rss)} MiB"
    )

    IO.puts(
      "(a loaded artifact's code pages are the file's page-cache pages, shared by every VM that maps it)"
    )
  end

  defp rss_growth(fun) do
    :erlang.garbage_collect()
    before = rss()
    value = fun.()
    :erlang.garbage_collect()
    {rss() - before, value}
  end

  defp rss do
    "/proc/self/status"
    |> File.read!()
    |> String.split("\n")
    |> Enum.find_value(fn
      "VmRSS:" <> rest ->
        rest |> String.trim() |> String.split() |> hd() |> String.to_integer() |> Kernel.*(1024)

      _ ->
        nil
    end)
  end

  defp ratio(results, slow, fast) do
    by_name = Map.new(results, &{&1.name, &1})

    with %{median_ns: s} <- by_name[slow], %{median_ns: f} <- by_name[fast] do
      IO.puts(
        "#{slow} / #{fast}: #{Float.round(s / f, 1)}x (medians; target for the large module >= 100x)"
      )
    end
  end
end

Wasmbeam.Bench.ModuleCache.run()
