defmodule Mix.Tasks.Wasmbeam.Run do
  @shortdoc "Runs a WASI program, or calls a module's export, like `wasmtime run`"
  @moduledoc """
  Runs a WebAssembly program from the command line.

      mix wasmbeam.run program.wasm -- ARGS...
      mix wasmbeam.run --dir data::/data --env LANG=C tool.wasm -- --input /data/in.txt
      mix wasmbeam.run --invoke fib examples/fib.wat 30

  The file is a core module or a component. Without `--invoke`, it is
  run as a WASI command: a core module's `_start`, or a component's
  `wasi:cli/run` (a WASI preview-2 command, such as one made with
  `wasm-tools component new --adapt` or a `wasm32-wasip2` toolchain):
  its stdout and stderr appear as it writes them, the BEAM's stdin is its
  stdin, and the task exits with the program's exit status. Like every
  WASI program Wasmbeam runs, it sees only what the options grant: its
  arguments, the `--env` variables and the `--dir` directories.

  With `--invoke NAME`, the export `NAME` is called (after `_initialize`,
  for a reactor that has one) with the arguments after the file, parsed
  by its parameter types (integers, floats, `inf`, `-inf`, `nan`), and
  its results are printed one per line. A module that
  imports WASI gets the same WASI context as a command.

  For a component, `--invoke` takes the call written in WAVE, as
  `wasmtime run --invoke` does, and prints the result in WAVE; the
  arguments after the file are then the component's WASI arguments:

      mix wasmbeam.run --invoke 'add(1, 2)' adder.wasm
      mix wasmbeam.run --invoke 'my:pkg/shapes#area({width: 2.0, height: 3.0})' shapes.wasm

  Arguments for the program that look like options go after `--`.

  The task compiles the project and starts Wasmbeam only: not the
  project's own application, and without `config/runtime.exs`, so it
  works in a project whose application needs a database or secrets to
  start.

  The module is compiled through `Wasmbeam.ModuleCache`: the first run of
  a program compiles it, later runs load the compiled code from the cache
  (CPython: about 30 ms instead of seconds).

  ## Progress

  Standard output belongs to the program, so the task writes nothing of
  its own there: what it has to say goes to standard error, each line
  starting with `wasmbeam: `, and only when it is worth saying. A run that
  loads its module quickly prints nothing more than the program does.
  When the module is still compiling after a second, the task says so,
  and how long it took once done:

      wasmbeam: compiling python-3.11.3.wasm (19.6 MiB)...
      wasmbeam: compiled python-3.11.3.wasm (19.6 MiB) in 5.4 s (cached for next time)

  A load from the cache that takes longer than that second is reported
  too. With `--verbose` (`-v`) the task always says where the module came
  from (compiled now, the module cache, precompiled artifacts) with the
  time it took, and how long the program ran:

      wasmbeam: loaded python-3.11.3.wasm (19.6 MiB) from the module cache in 31 ms
      wasmbeam: ran python-3.11.3.wasm in 1.2 s (exit status 0)

  The environment variable `WASMBEAM_PROGRESS_AFTER_MS` sets that second
  (`0`: report every load, as `--verbose` does, but not the run).

  ## Options

    * `--dir HOST[::GUEST][:ro|:rw]` - make the host directory `HOST`
      visible to the program as `GUEST` (default: the same path),
      read-write, or read-only with `:ro`; may be repeated
    * `--env NAME=VALUE` - set an environment variable; `--env NAME`
      passes the variable from the host; may be repeated
    * `--timeout MS` - stop the program after MS milliseconds
    * `--fuel N` - run with a fuel budget of N (uses a fuel-metering engine)
    * `--invoke NAME` - call this export instead of running the command
      (for a component: the call in WAVE, `--invoke 'name(arg, ...)'`)
    * `--verbose` (`-v`) - report where the module came from, and the
      times, on standard error (see "Progress")
    * `--argv0 NAME` - the program's name (`argv[0]`; default: the file's)
    * `-W NAME[=VALUE][,...]` (or `--wasm`), as the Wasmtime CLI spells
      them: `fuel=N` and `timeout=DURATION` (`1` is seconds; `2s`,
      `100ms`, `1m`) as `--fuel`/`--timeout` (which win when both are
      given), `max-memory-size=BYTES` and `max-table-elements=N` (store
      limits), `max-wasm-stack=BYTES`; `trap-on-grow-failure`,
      `unknown-imports-trap` and `unknown-imports-default` are refused with
      the reason (a failed grow returns -1 as Wasm says; every import must
      be given)
    * `-S NAME[=y|n][,...]` (or `--wasi`), as the Wasmtime CLI spells them:
      `inherit-env` (the BEAM's environment; `--env` wins),
      `inherit-network` (every address, TCP and UDP, for a component; a
      core module has no sockets), `tcp=n`/`udp=n` to take a protocol
      away, `allow-ip-name-lookup`; the others (`cli`, `http`, `nn`,
      `threads`, ...) are refused with the reason
    * `-W PROPOSAL[=y|n][,...]` - turn a WebAssembly
      proposal on or off, named as the Wasmtime CLI names them:
      `-W exceptions=n`, `-W threads`, `-W gc=n,function-references=n`;
      may be repeated. The defaults are Wasmtime's (see
      `Wasmbeam.Engine.Config`); known names: #{Enum.map_join(Keyword.keys(Wasmbeam.Engine.Config.default_features()), ", ", &("`" <> String.replace(Atom.to_string(&1), "_", "-") <> "`"))}

  Exit status: the program's own status for a WASI command; 0 when an
  `--invoke` call succeeds; 1 when the module cannot be loaded or the run
  fails (trap, timeout, out of fuel: the error goes to stderr); 2 on bad
  usage.
  """
  use Mix.Task

  alias Mix.Wasmbeam.RunFlags
  alias Wasmbeam.{Component, Engine, Error, Instance, Module, ModuleCache, Wasi}

  @switches [
    invoke: :string,
    timeout: :integer,
    fuel: :integer,
    dir: :keep,
    env: :keep,
    wasm: :keep,
    wasi: :keep,
    argv0: :string,
    verbose: :boolean
  ]

  @impl true
  def run(argv) do
    Mix.Wasmbeam.start_wasmbeam()

    case OptionParser.parse(argv, strict: @switches, aliases: [W: :wasm, S: :wasi, v: :verbose]) do
      {opts, [file | args], []} ->
        exit_with(Mix.Wasmbeam.without_compile_logs(fn -> execute(file, args, opts) end))

      {_, _, [{bad, _} | _]} ->
        usage("unknown or invalid option #{bad}")

      {_, [], _} ->
        usage("missing FILE")
    end
  end

  defp execute(file, args, opts) do
    with {:ok, w} <- RunFlags.wasm(Keyword.get_values(opts, :wasm)),
         {:ok, s} <- RunFlags.wasi(Keyword.get_values(opts, :wasi)),
         {:ok, engine} <- engine(opts, w),
         {:ok, dirs} <- dirs(Keyword.get_values(opts, :dir)),
         {:ok, env} <- env(Keyword.get_values(opts, :env)),
         {:ok, progress} <- progress(opts),
         {:ok, module} <- load(engine, file, progress) do
      printer = start_printer()
      stdin = start_stdin_reader()

      wasi = [
        program_name: opts[:argv0] || Path.basename(file),
        env: env,
        inherit_env: s.inherit_env,
        dirs: dirs,
        stdin: stdin,
        # The printer writes everything out as it comes: no limit.
        stdout: {:stream, printer, nil, :infinity},
        stderr: {:stream, printer, nil, :infinity},
        network: s.network,
        ip_name_lookup: s.ip_name_lookup
      ]

      budget = budget(opts, w)
      started = System.monotonic_time(:millisecond)

      result =
        case opts[:invoke] do
          nil -> Wasi.run(module, [args: args] ++ wasi ++ budget)
          name -> invoke(module, name, args, wasi, budget)
        end

      stderr_at_line_start = wait_printed(printer)

      if progress.verbose do
        unless stderr_at_line_start, do: IO.write(:stderr, "\n")
        report_run(file, opts[:invoke], result, started)
      end

      result
    end
  end

  defp report_run(file, invoke, result, started) do
    took = Mix.Wasmbeam.format_ms(System.monotonic_time(:millisecond) - started)

    case {invoke, result} do
      {nil, {:ok, %{exit_code: code}}} ->
        say("ran #{Path.basename(file)} in #{took} (exit status #{code})")

      {name, {kind, _}} when kind in [:results, :wave] ->
        say("called #{name} in #{took}")

      {_, {:error, _}} ->
        say("failed after #{took}")
    end
  end

  # ---------------------------------------------------------------------
  # Loading the module, and saying so: see "Progress" in the moduledoc.

  @progress_after_ms 1000

  defp progress(opts) do
    case System.get_env("WASMBEAM_PROGRESS_AFTER_MS", "") do
      "" ->
        {:ok, %{verbose: opts[:verbose] == true, after_ms: @progress_after_ms}}

      text ->
        case Integer.parse(text) do
          {ms, ""} when ms >= 0 ->
            {:ok, %{verbose: opts[:verbose] == true, after_ms: ms}}

          _ ->
            bad_usage("WASMBEAM_PROGRESS_AFTER_MS must be a number of milliseconds, got #{text}")
        end
    end
  end

  defp load(engine, file, progress) do
    with {:ok, bytes} <- Module.read_file(file) do
      name = "#{Path.basename(file)} (#{Mix.Wasmbeam.format_size(byte_size(bytes))})"
      reporter = start_reporter(name, progress)
      started = System.monotonic_time(:millisecond)
      result = ModuleCache.fetch(engine, bytes, notify_compile: reporter)
      took = System.monotonic_time(:millisecond) - started

      send(reporter, {:loaded, self(), result, took})

      receive do
        {:reported, ^reporter} -> :ok
      end

      case result do
        {:ok, module, _source} -> {:ok, module}
        {:error, _} = error -> error
      end
    end
  end

  # The reporter waits beside the load: the cache tells it when a compile
  # begins, and it says so once the load has taken `after_ms`; the loading
  # process tells it how the load ended, and waits for its last line, so
  # that the program's output comes after it.
  defp start_reporter(name, progress) do
    state =
      Map.merge(progress, %{
        name: name,
        started: System.monotonic_time(:millisecond),
        compiling: false,
        announced: false
      })

    spawn_link(fn -> report_loop(state) end)
  end

  defp report_loop(state) do
    wait =
      if state.compiling and not state.announced,
        do: max(state.started + state.after_ms - System.monotonic_time(:millisecond), 0),
        else: :infinity

    receive do
      {:wasmbeam_compiling, _entry} ->
        state = %{state | compiling: true}
        if state.verbose, do: report_loop(announce(state)), else: report_loop(state)

      {:loaded, from, result, took} ->
        report_loaded(state, result, took)
        send(from, {:reported, self()})
    after
      wait -> report_loop(announce(state))
    end
  end

  defp announce(state) do
    say("compiling #{state.name}...")
    %{state | announced: true}
  end

  defp report_loaded(state, {:ok, _module, source}, took) do
    if state.verbose or state.announced or took >= state.after_ms do
      # A compile that ended before the reporter got to say it began
      # (a short wait, or the cache's notice arriving late) still reads
      # in order.
      if source == :miss and not state.announced, do: announce(state)
      say(loaded_text(state.name, source, Mix.Wasmbeam.format_ms(took)))
    end
  end

  # The error itself is printed by the task, as for any failure.
  defp report_loaded(_state, {:error, _}, _took), do: :ok

  defp loaded_text(name, :miss, took), do: "compiled #{name} in #{took} (cached for next time)"

  defp loaded_text(name, :disk_hit, took),
    do: "loaded #{name} from the module cache in #{took}"

  defp loaded_text(name, :precompiled_hit, took),
    do: "loaded #{name} from the precompiled artifacts in #{took}"

  defp loaded_text(name, :memory_hit, took),
    do: "#{name} was already loaded in this VM (#{took})"

  defp loaded_text(name, :joined, took),
    do: "#{name} was compiled by another process of this VM in #{took}"

  defp say(line), do: IO.puts(:stderr, "wasmbeam: " <> line)

  # A component: `--invoke` is a call written in WAVE, as the Wasmtime CLI
  # takes it (`--invoke 'add(1, 2)'`), and the arguments after the file
  # are the program's (WASI) arguments; the result is printed in WAVE.
  defp invoke(%Component{} = component, call, args, wasi, budget) do
    wasi? =
      Enum.any?(Component.imports(component), fn {name, _} ->
        String.starts_with?(name, "wasi:")
      end)

    instance_options = if wasi?, do: [wasi: [args: args] ++ wasi] ++ budget, else: budget

    with {:ok, instance} <- Component.Instance.new(component, %{}, instance_options),
         {:ok, text} <- Component.Wave.call(instance, call, Keyword.take(budget, [:timeout])) do
      {:wave, if(text, do: [text], else: [])}
    end
  end

  defp invoke(module, name, args, wasi, budget) do
    wasi? =
      Enum.any?(Module.imports(module), fn {mod, _, _} -> mod == "wasi_snapshot_preview1" end)

    instance_options = if wasi?, do: [wasi: wasi] ++ budget, else: budget

    with {:ok, params} <- params(module, name),
         {:ok, values} <- parse_args(args, params),
         {:ok, instance} <- Instance.new(module, %{}, instance_options),
         :ok <- initialize(instance, wasi?, budget),
         {:ok, results} <- Instance.call(instance, name, values, Keyword.take(budget, [:timeout])) do
      {:results, results}
    end
  end

  # A reactor's `_initialize` runs before the export, as the Wasmtime CLI
  # runs it (with WASI, `Instance.new/3` has run it already).
  defp initialize(_instance, true, _budget), do: :ok

  defp initialize(instance, false, budget) do
    if List.keymember?(Instance.exports(instance), "_initialize", 0) do
      with {:ok, _} <-
             Instance.call(instance, "_initialize", [], Keyword.take(budget, [:timeout])),
           do: :ok
    else
      :ok
    end
  end

  # Output is printed by its own process, as it arrives, so that the
  # program's output appears while it runs.
  defp start_printer do
    spawn_link(fn -> print_loop(true) end)
  end

  # Keeps whether the program's stderr ends a line, so that the task's own
  # last line (--verbose) starts on a line of its own.
  defp print_loop(stderr_at_line_start) do
    receive do
      {:wasmbeam_output, _tag, :stdout, data} ->
        IO.binwrite(:stdio, data)
        print_loop(stderr_at_line_start)

      {:wasmbeam_output, _tag, :stderr, ""} ->
        print_loop(stderr_at_line_start)

      {:wasmbeam_output, _tag, :stderr, data} ->
        IO.binwrite(:stderr, data)
        print_loop(:binary.last(data) == ?\n)

      {:flush, from} ->
        send(from, {:printed, stderr_at_line_start})
    end
  end

  # Returns whether the program's stderr ended a line.
  defp wait_printed(printer) do
    send(printer, {:flush, self()})

    receive do
      {:printed, stderr_at_line_start} -> stderr_at_line_start
    end
  end

  # The BEAM's stdin, forwarded to the program as it is read.
  defp start_stdin_reader do
    pipe = Wasi.Pipe.new()

    spawn_link(fn ->
      # A raw get_line request with an empty prompt: bytes, not text.
      Stream.repeatedly(fn -> :io.request(:standard_io, {:get_line, :latin1, []}) end)
      |> Enum.find(fn
        data when is_binary(data) -> Wasi.Pipe.write(pipe, data) != :ok
        _eof_or_error -> true
      end)

      Wasi.Pipe.close(pipe)
    end)

    pipe
  end

  # The default engine, unless fuel, proposals or a stack size ask for another.
  defp engine(opts, w) do
    fuel? = opts[:fuel] != nil or w.fuel != nil

    stack =
      if w.max_wasm_stack,
        do: [
          max_wasm_stack: w.max_wasm_stack,
          async_stack_size: w.max_wasm_stack + 2 * 1024 * 1024
        ],
        else: []

    if not fuel? and w.features == [] and stack == [] do
      {:ok, Engine.default()}
    else
      case Engine.new([consume_fuel: fuel?, features: w.features] ++ stack) do
        {:ok, engine} -> {:ok, engine}
        {:error, %Error{message: message}} -> bad_usage("-W: #{message}")
      end
    end
  end

  # What bounds the run: --timeout and --fuel, or -W timeout= and fuel=
  # (the flags win), and -W's store limits.
  defp budget(opts, w) do
    [
      timeout: opts[:timeout] || w.timeout,
      fuel: opts[:fuel] || w.fuel,
      memory_size: w.memory_size,
      table_elements: w.table_elements
    ]
    |> Enum.reject(fn {_, v} -> v == nil end)
  end

  defp dirs(specs) do
    Enum.reduce_while(specs, {:ok, []}, fn spec, {:ok, acc} ->
      {spec, access} =
        cond do
          String.ends_with?(spec, ":ro") -> {String.trim_trailing(spec, ":ro"), :read_only}
          String.ends_with?(spec, ":rw") -> {String.trim_trailing(spec, ":rw"), :read_write}
          true -> {spec, :read_write}
        end

      case String.split(spec, "::", parts: 2) do
        [""] ->
          {:halt, bad_usage("--dir needs a directory")}

        [host] ->
          {:cont, {:ok, [{host, host, access} | acc]}}

        [host, guest] when host != "" and guest != "" ->
          {:cont, {:ok, [{host, guest, access} | acc]}}

        _ ->
          {:halt, bad_usage("--dir takes HOST[::GUEST][:ro|:rw], got #{inspect(spec)}")}
      end
    end)
    |> case do
      {:ok, dirs} -> {:ok, Enum.reverse(dirs)}
      error -> error
    end
  end

  defp env(specs) do
    Enum.reduce_while(specs, {:ok, []}, fn spec, {:ok, acc} ->
      case String.split(spec, "=", parts: 2) do
        [name, value] when name != "" ->
          {:cont, {:ok, [{name, value} | acc]}}

        [name] when name != "" ->
          case System.get_env(name) do
            nil -> {:cont, {:ok, acc}}
            value -> {:cont, {:ok, [{name, value} | acc]}}
          end

        _ ->
          {:halt, bad_usage("--env takes NAME=VALUE or NAME, got #{inspect(spec)}")}
      end
    end)
    |> case do
      {:ok, env} -> {:ok, Enum.reverse(env)}
      error -> error
    end
  end

  defp params(module, name) do
    case List.keyfind(Module.exports(module), name, 0) do
      {^name, {:func, params, _results}} ->
        {:ok, params}

      nil ->
        {:error, Error.new(:not_found, "the module has no export named #{inspect(name)}")}

      {^name, type} ->
        {:error,
         Error.new(:not_found, "#{name} is not a function: #{Wasmbeam.Types.format(type)}")}
    end
  end

  defp parse_args(args, params) when length(args) != length(params) do
    {:error,
     Error.new(:arity, "the function takes #{length(params)} argument(s), got #{length(args)}")}
  end

  defp parse_args(args, params) do
    Enum.zip(args, params)
    |> Enum.reduce_while({:ok, []}, fn {text, type}, {:ok, acc} ->
      case parse(text, type) do
        {:ok, value} -> {:cont, {:ok, [value | acc]}}
        :error -> {:halt, {:error, Error.new(:type, "cannot read #{inspect(text)} as #{type}")}}
      end
    end)
    |> case do
      {:ok, values} -> {:ok, Enum.reverse(values)}
      error -> error
    end
  end

  defp parse(text, type) when type in [:i32, :i64, :v128] do
    case Integer.parse(text) do
      {n, ""} -> {:ok, n}
      _ -> :error
    end
  end

  defp parse(text, type) when type in [:f32, :f64] do
    case {text, Float.parse(text)} do
      {"inf", _} -> {:ok, :infinity}
      {"-inf", _} -> {:ok, :neg_infinity}
      {"nan", _} -> {:ok, :nan}
      {_, {f, ""}} -> {:ok, f}
      _ -> :error
    end
  end

  defp parse(_text, _type), do: :error

  defp format(value) when is_float(value) or is_integer(value), do: to_string(value)
  defp format(:infinity), do: "inf"
  defp format(:neg_infinity), do: "-inf"
  defp format(:nan), do: "nan"
  defp format(other), do: inspect(other)

  defp exit_with({:ok, %{exit_code: 0}}), do: :ok
  defp exit_with({:ok, %{exit_code: code}}), do: exit({:shutdown, code})

  defp exit_with({:results, results}) do
    Enum.each(results, &IO.puts(format(&1)))
  end

  defp exit_with({:wave, lines}), do: Enum.each(lines, &IO.puts/1)

  defp exit_with({:usage, message}), do: usage(message)

  # A guest that exits (`proc_exit`, `wasi:cli/exit`) during an `--invoke`
  # call ends the task with its status, as under the Wasmtime CLI.
  defp exit_with({:error, %Error{kind: :exit, exit_code: 0}}), do: :ok
  defp exit_with({:error, %Error{kind: :exit, exit_code: code}}), do: exit({:shutdown, code})

  defp exit_with({:error, %Error{} = error}) do
    IO.puts(:stderr, "error: " <> Exception.message(error))
    exit({:shutdown, 1})
  end

  defp bad_usage(message), do: {:usage, message}

  defp usage(message) do
    IO.puts(
      :stderr,
      "#{message}\nusage: mix wasmbeam.run [--dir HOST[::GUEST][:ro]] [--env NAME=VALUE] " <>
        "[--timeout MS] [--fuel N] [--invoke NAME] [--argv0 NAME] [-W NAME[=VALUE]] " <>
        "[-S NAME[=y|n]] [-v] FILE [-- ARGS...]"
    )

    exit({:shutdown, 2})
  end
end
