defmodule Mix.Tasks.Wasmbeam.Precompile do
  @shortdoc "Compiles a project's WebAssembly modules ahead of time, for its release"
  @moduledoc """
  Compiles the WebAssembly modules a project ships into artifacts that
  `Wasmbeam.ModuleCache` loads at run time instead of compiling, so that a
  release boots without compiling anything.

      mix wasmbeam.precompile
      mix wasmbeam.precompile --out priv/wasm_cache "priv/plugins/*.wasm"
      mix wasmbeam.precompile --consume-fuel --strategy winch

  Arguments are files or glob patterns (default: `priv/wasm/**/*.wasm` and
  `priv/wasm/**/*.wat`). Each module becomes `OUT/<entry>.cwasm`, where
  `<entry>` is its cache key (`Wasmbeam.ModuleCache.entry/2`); artifacts in
  `OUT` that this run did not produce are removed (they belong to modules
  or engine settings the project no longer ships), unless a pattern
  matched no file: a mistyped pattern or a missing directory removes
  nothing.

  The task compiles the project and starts Wasmbeam only: not the
  project's own application, and without `config/runtime.exs` (which, in
  a Phoenix app, typically needs a `DATABASE_URL` the build machine does
  not have). Configuration it reads (`engines:` below) belongs in
  `config/config.exs` or a file it imports.

  Then tell the cache to look there first (it is read-only at run time):

      config :wasmbeam, Wasmbeam.ModuleCache, precompiled: [{:my_app, "priv/wasm_cache"}]

  ## Options

    * `--out DIR` - where to write (default `priv/wasm_cache`)
    * `--strategy cranelift|winch|pulley`, `--opt-level none|speed|speed_and_size`,
      `--consume-fuel`, `--no-epoch-interruption` - the engine's settings

  An artifact is only found by an engine with the same settings on the
  same kind of machine: the key covers the engine's code-generation
  settings, the Wasmtime version and the target, including the CPU
  features Cranelift detected on the machine that ran this task. Build the
  release on the machine type it runs on; a mismatch costs a compilation
  at run time, never a wrong load, and the cache logs a warning that names
  the difference (from the `manifest` this task writes beside the
  artifacts; see `docs/RELEASES.md`). To precompile for several engines, list
  their options in the application environment and run without engine
  flags:

      config :wasmbeam, Mix.Tasks.Wasmbeam.Precompile, engines: [[], [consume_fuel: true]]

  ## Trust

  Precompiled artifacts are sealed with a public key: the keyed hash
  detects damage and a file stored under another module's name, and the
  files are trusted because they are part of the release, which its owner
  controls like the `.beam` files and the NIF. Replace them by
  rename or a fresh release directory, never by rewriting a file in place
  while a node runs: a running node maps them.

  ## Output

  A line for each artifact written (its size, the time its compile took
  and the engine it is for); before a module of 1 MiB or more, whose
  compile can take seconds, a line that says it is being compiled; and at the
  end, how many artifacts were written, how many compiles failed, and the
  time it all took:

      compiling priv/wasm/python-3.11.3.wasm (19.6 MiB)...
      priv/wasm/python-3.11.3.wasm -> priv/wasm_cache/3be7f0f1...8c8d.cwasm (23.9 MiB, 5.4 s, #Wasmbeam.Engine<cranelift, fuel: false, epoch: true>)
      priv/wasm/fib.wat -> priv/wasm_cache/ba3ff7d1...5997.cwasm (14 KiB, 4 ms, #Wasmbeam.Engine<cranelift, fuel: false, epoch: true>)
      wrote 2 artifacts to priv/wasm_cache in 5.4 s

  Exits with status 1 if a module fails to compile (the error is printed).
  """
  use Mix.Task

  alias Wasmbeam.{Engine, ModuleCache}

  @switches [
    out: :string,
    strategy: :string,
    opt_level: :string,
    consume_fuel: :boolean,
    epoch_interruption: :boolean
  ]

  @default_patterns ["priv/wasm/**/*.wasm", "priv/wasm/**/*.wat"]

  @impl true
  def run(argv) do
    Mix.Wasmbeam.start_wasmbeam()

    case OptionParser.parse(argv, strict: @switches) do
      {opts, patterns, []} ->
        Mix.Wasmbeam.without_compile_logs(fn -> precompile(opts, patterns) end)

      {_, _, [{bad, _} | _]} ->
        usage("unknown or invalid option #{bad}")
    end
  end

  defp precompile(opts, patterns) do
    out = Keyword.get(opts, :out, "priv/wasm_cache")

    {patterns, unmatched} =
      case patterns do
        # The defaults cover .wasm and .wat: a project may ship only one kind.
        [] ->
          {@default_patterns,
           if(expand_all(@default_patterns) == [], do: @default_patterns, else: [])}

        given ->
          {given, Enum.filter(given, &(expand(&1) == []))}
      end

    files = expand_all(patterns)

    with {:ok, engines} <- engines(opts) do
      if unmatched != [], do: Mix.shell().info("no modules match #{Enum.join(unmatched, ", ")}")

      started = System.monotonic_time(:millisecond)

      written =
        for engine <- engines, file <- files do
          write(engine, file, out)
        end

      # A pattern that matched nothing is more likely a mistake than a
      # module the project stopped shipping: keep what is there.
      if unmatched == [],
        do: clean(out, written),
        else: Mix.shell().info("kept the existing artifacts in #{out}: a pattern matched no file")

      summary(written, out, length(engines), System.monotonic_time(:millisecond) - started)

      if Enum.any?(written, &(&1 == :error)),
        do: exit({:shutdown, 1}),
        else: :ok
    else
      {:error, %Wasmbeam.Error{message: message}} -> usage(message)
    end
  end

  defp expand_all(patterns), do: patterns |> Enum.flat_map(&expand/1) |> Enum.uniq()

  defp expand(pattern) do
    case Path.wildcard(pattern) do
      [] -> if File.regular?(pattern), do: [pattern], else: []
      paths -> Enum.filter(paths, &File.regular?/1)
    end
  end

  defp engines(opts) do
    flags = Keyword.take(opts, [:strategy, :opt_level, :consume_fuel, :epoch_interruption])
    configured = Application.get_env(:wasmbeam, __MODULE__, [])[:engines]

    option_lists =
      cond do
        flags != [] -> [flags]
        is_list(configured) and configured != [] -> configured
        true -> [[]]
      end

    Enum.reduce_while(option_lists, {:ok, []}, fn options, {:ok, acc} ->
      case Engine.new(engine_options(options)) do
        {:ok, engine} -> {:cont, {:ok, acc ++ [engine]}}
        error -> {:halt, error}
      end
    end)
  end

  @atoms %{
    "cranelift" => :cranelift,
    "winch" => :winch,
    "pulley" => :pulley,
    "none" => :none,
    "speed" => :speed,
    "speed_and_size" => :speed_and_size
  }

  # Strings from the command line become the atoms Engine.Config expects;
  # anything unknown is passed on as the string, and refused there.
  defp engine_options(options) do
    Enum.map(options, fn
      {key, value} when key in [:strategy, :opt_level] and is_binary(value) ->
        {key, Map.get(@atoms, value, value)}

      other ->
        other
    end)
  end

  # From this size of input up, a compile takes long enough (a second or
  # more) that the task says what it is doing before it starts.
  @announced_bytes 1024 * 1024

  defp write(engine, file, out) do
    with {:ok, bytes} <- read(file),
         started = announce(file, bytes),
         {:ok, path} <- ModuleCache.precompile(engine, bytes, out) do
      took = Mix.Wasmbeam.format_ms(System.monotonic_time(:millisecond) - started)
      size = Mix.Wasmbeam.format_size(File.stat!(path).size)
      Mix.shell().info("#{file} -> #{path} (#{size}, #{took}, #{inspect(engine)})")
      {:ok, path}
    else
      {:error, %Wasmbeam.Error{} = error} ->
        Mix.shell().error("#{file}: #{Exception.message(error)}")
        :error
    end
  end

  # Returns when the compile starts.
  defp announce(file, bytes) do
    if byte_size(bytes) >= @announced_bytes,
      do: Mix.shell().info("compiling #{file} (#{Mix.Wasmbeam.format_size(byte_size(bytes))})...")

    System.monotonic_time(:millisecond)
  end

  defp summary(written, out, engines, ms) do
    ok = Enum.count(written, &match?({:ok, _}, &1))
    failed = Enum.count(written, &(&1 == :error))

    per_engine =
      if engines > 1,
        do: " (#{plural(div(length(written), engines), "module")} x #{engines} engines)",
        else: ""

    failures = if failed > 0, do: "; #{plural(failed, "compile")} failed", else: ""

    Mix.shell().info(
      "wrote #{plural(ok, "artifact")}#{per_engine} to #{out} " <>
        "in #{Mix.Wasmbeam.format_ms(ms)}#{failures}"
    )
  end

  defp plural(1, noun), do: "1 #{noun}"
  defp plural(n, noun), do: "#{n} #{noun}s"

  defp read(file) do
    case File.read(file) do
      {:ok, bytes} ->
        {:ok, bytes}

      {:error, reason} ->
        {:error, Wasmbeam.Error.new(:argument, "cannot read: #{:file.format_error(reason)}")}
    end
  end

  defp clean(out, written) do
    keep = for {:ok, path} <- written, into: MapSet.new(), do: Path.expand(path)

    for path <- Path.wildcard(Path.join(out, "*.cwasm")),
        not MapSet.member?(keep, Path.expand(path)) do
      File.rm!(path)
      Mix.shell().info("removed stale #{path}")
    end
  end

  defp usage(message) do
    Mix.shell().error(
      "#{message}\nusage: mix wasmbeam.precompile [--out DIR] [--strategy S] [--opt-level L] " <>
        "[--consume-fuel] [--no-epoch-interruption] [FILE_OR_GLOB...]"
    )

    exit({:shutdown, 2})
  end
end
