defmodule Wasmbeam.ModuleCachePrecompiledMismatchTest do
  # A release precompiled on a machine whose CPU has other features than
  # the production machine's finds none of its artifacts (the cache key
  # covers the CPU features): the cache says so instead of recompiling
  # silently. Another CPU cannot be had here; what it leaves in the
  # precompiled directory can: an artifact and manifest line under
  # another entry and compatibility hash, with the same engine settings,
  # Wasmbeam version and system architecture.
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog

  alias Wasmbeam.{Engine, ModuleCache}
  alias Wasmbeam.ModuleCache.Manifest

  @moduletag :tmp_dir

  defp wat(n), do: ~s[(module (func (export "answer") (result i32) i32.const #{n}))]

  defp start_cache(context, shipped) do
    name = :"mismatch_cache_#{System.unique_integer([:positive])}"
    dir = Path.join(context.tmp_dir, "cache")
    start_supervised!({ModuleCache, name: name, dir: dir, precompiled: [shipped]}, id: name)
    name
  end

  # The log of every process while it runs (async tests log too): look
  # for this cache's message, never for silence.
  defp compile_logged(cache, engine, bytes) do
    capture_log(fn -> assert {:ok, _} = ModuleCache.compile(engine, bytes, cache: cache) end)
  end

  # Makes the artifact of `entry` look as if made on a machine with other
  # CPU features: another file name and another compatibility hash.
  defp as_if_from_another_cpu(shipped, entry) do
    other_entry = String.duplicate("c", 64)

    File.rename!(
      Path.join(shipped, entry <> ".cwasm"),
      Path.join(shipped, other_entry <> ".cwasm")
    )

    manifest = Manifest.file(shipped)

    text =
      manifest
      |> File.read!()
      |> String.split("\n", trim: true)
      |> Enum.map_join(fn line ->
        case String.split(line, "\t") do
          [^entry, module, _compatibility | rest] ->
            Enum.join([other_entry, module, "12345" | rest], "\t") <> "\n"

          _ ->
            line <> "\n"
        end
      end)

    File.write!(manifest, text)
  end

  test "an artifact made for another CPU is reported, counted, and the module compiled",
       context do
    shipped = Path.join(context.tmp_dir, "shipped")
    engine = Engine.default()
    {:ok, _} = ModuleCache.precompile(engine, wat(1), shipped)
    {:ok, _} = ModuleCache.precompile(engine, wat(2), shipped)
    as_if_from_another_cpu(shipped, ModuleCache.entry(engine, wat(1)))
    cache = start_cache(context, shipped)

    log = compile_logged(cache, engine, wat(1))
    assert log =~ "#{shipped} has this module precompiled, but for another CPU"
    assert log =~ "CPU features differ"

    assert %{precompiled_mismatches: 1, compiles: 1, precompiled_hits: 0} =
             ModuleCache.stats(cache)

    # The other module's artifact fits: a hit, nothing to report.
    refute compile_logged(cache, engine, wat(2)) =~ "has this module precompiled"

    # A module the directory does not have is a plain miss.
    refute compile_logged(cache, engine, wat(3)) =~ "has this module precompiled"

    assert %{precompiled_mismatches: 1, compiles: 2, precompiled_hits: 1} =
             ModuleCache.stats(cache)
  end

  test "an artifact made for other engine settings is reported as such", context do
    shipped = Path.join(context.tmp_dir, "shipped")
    {:ok, _} = ModuleCache.precompile(Engine.new!(consume_fuel: true), wat(4), shipped)
    cache = start_cache(context, shipped)

    log = compile_logged(cache, Engine.default(), wat(4))
    assert log =~ "for an engine with other settings than this one"
    assert %{precompiled_mismatches: 1, compiles: 1} = ModuleCache.stats(cache)
  end

  test "the manifest forgets artifacts that are gone", context do
    shipped = Path.join(context.tmp_dir, "shipped")
    fuel = Engine.new!(consume_fuel: true)
    {:ok, path} = ModuleCache.precompile(fuel, wat(5), shipped)
    File.rm!(path)
    cache = start_cache(context, shipped)
    refute compile_logged(cache, Engine.default(), wat(5)) =~ "has this module precompiled"

    {:ok, _} = ModuleCache.precompile(fuel, wat(6), shipped)
    refute File.read!(Manifest.file(shipped)) =~ ModuleCache.entry(fuel, wat(5))
    assert %{precompiled_mismatches: 0} = ModuleCache.stats(cache)
  end
end
