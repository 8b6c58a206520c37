defmodule Wasmbeam.Wasi do
  @moduledoc """
  Runs WASI programs, granting them exactly what you list and nothing
  else: WASI preview 1 core modules, and WASI preview 2 components.

  A WASI *command* (a program with `main`: a core module's `_start`, or a
  component's `wasi:cli/run`) runs to completion with `run/2`, which
  returns its exit status and what it wrote. A WASI *reactor* (a library
  exporting `_initialize`, or a component that imports WASI) is
  instantiated with `Wasmbeam.Instance.new/3` (or
  `Wasmbeam.Component.Instance.new/3`) and its `:wasi` option, then called
  like any instance.

  ## Preview 2

  A component's `wasi:` imports (any 0.2.x version) are served by
  Wasmtime's WASI preview 2 from the same context and the same options
  as preview 1: arguments, environment, preopened directories, stdin
  pipes, captured or streamed output, deterministic clocks and
  randomness behave alike, and a guest waiting on I/O holds no thread.
  Preview 2 adds sockets, which stay closed unless the `:network` option
  grants addresses (see `Wasmbeam.Wasi.Options`). A preview-1 program
  made a component with Wasmtime's adapter (`wasm-tools component new
  --adapt`) gives the same output through `run/2` as the original; its
  exit status is 0 or 1, because the adapter reports any failure as 1
  (`wasmtime run` does the same). Outgoing `wasi:http` is not offered.
  A component that imports WASI but is given no `:wasi` options fails to
  link, saying so.

  By default a program gets no arguments but its name, no environment,
  no directories, a closed stdin, captured stdout and stderr, the host's
  clocks and secure randomness, and no network. `Wasmbeam.Wasi.Options`
  lists the options that grant more.

  Everything that applies to calls applies to WASI programs: `timeout:`,
  `fuel:` and store limits, cancellation when the calling process dies,
  and time slicing: a program that computes for a minute, or waits on its
  stdin for an hour, never holds a scheduler thread for more than a slice.

  ## Examples

  A program reading stdin and writing stdout (here in WAT, calling
  `fd_read` and `fd_write`):

      iex> wat = ~S[(module
      ...>   (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
      ...>   (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      ...>   (memory (export "memory") 1)
      ...>   (func (export "_start")
      ...>     (i32.store (i32.const 0) (i32.const 100))  ;; iovec: buffer at 100,
      ...>     (i32.store (i32.const 4) (i32.const 64))   ;; 64 bytes long
      ...>     (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
      ...>     (i32.store (i32.const 4) (i32.load (i32.const 8)))  ;; write what was read
      ...>     (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))]
      iex> {:ok, result} = Wasmbeam.Wasi.run(wat, stdin: "echo me")
      iex> result
      %{exit_code: 0, stdout: "echo me", stderr: ""}

  Override one WASI function with an Elixir handler (here the clock):

      iex> wat = ~S[(module
      ...>   (import "wasi_snapshot_preview1" "clock_time_get" (func $now (param i32 i64 i32) (result i32)))
      ...>   (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      ...>   (memory (export "memory") 1)
      ...>   (func (export "_start")
      ...>     (drop (call $now (i32.const 0) (i64.const 1) (i32.const 0)))
      ...>     (call $exit (i32.wrap_i64 (i64.load (i32.const 0))))))]
      iex> clock = fn caller, _id, _precision, ptr ->
      ...>   :ok = Wasmbeam.Caller.write(caller, ptr, <<42::little-64>>)
      ...>   0
      ...> end
      iex> imports = %{"wasi_snapshot_preview1" => %{"clock_time_get" => {:fn, [:i32, :i64, :i32], [:i32], clock}}}
      iex> Wasmbeam.Wasi.run(wat, imports: imports)
      {:ok, %{exit_code: 42, stdout: "", stderr: ""}}
  """

  alias Wasmbeam.{Component, Engine, Error, Instance, LinkedModule, Module, Native, Store}
  alias Wasmbeam.Wasi.Options

  @type source :: Module.t() | Component.t() | LinkedModule.t() | Path.t() | binary()
  @type result :: %{
          exit_code: integer(),
          stdout: binary() | nil,
          stderr: binary() | nil
        }

  @run_keys [:engine, :imports, :timeout, :fuel, :cache]

  @doc """
  Runs a WASI command to completion: a core module's `_start`, or a
  component's `wasi:cli/run` `run` (whose `error` result is exit status 1).

  `source` is a compiled `Wasmbeam.Module` or `Wasmbeam.Component`, a
  `Wasmbeam.LinkedModule` linked with `wasi: true` (the fastest way to
  run one program many times), the path of a `.wasm` or `.wat` file, or
  the module's bytes (wasm binary or WAT text); components are told from
  core modules by their bytes.

  A path is compiled through `Wasmbeam.ModuleCache` (the default cache),
  so only the first run of a program on a machine pays for compiling it
  (seconds for a large one such as CPython); `cache: false` compiles it
  every time. Bytes are compiled each time unless `cache: true`.
  The module is loaded first, and only then does `:timeout` start: it
  bounds the program, never the compile.

  Returns `{:ok, %{exit_code: status, stdout: out, stderr: err}}` when the
  program ran to its end, whatever its status (a non-zero status is a
  result, not an error); `stdout` and `stderr` are the captured bytes, or
  `nil` when they were discarded or streamed. A trap, a timeout, running
  out of fuel or memory, or a module that cannot be loaded or linked is
  `{:error, %Wasmbeam.Error{}}`.

  ## Options

  The WASI options of `Wasmbeam.Wasi.Options` (`:args`, `:env`, `:dirs`,
  `:stdin`, `:stdout`, ...), and:

    * `:timeout` - milliseconds for the program: instantiation and
      `_start`, counted from when the module is loaded (compiling or
      loading it from the cache is not counted); default `:infinity`
    * `:cache` - whether to compile through `Wasmbeam.ModuleCache`
      (default: `true` for a path, `false` for bytes; ignored for a
      compiled module)
    * `:fuel` - a fuel budget for the whole run (the engine must have
      `consume_fuel: true`)
    * `:memory_size`, and the other store limits of `Wasmbeam.Store`
    * `:imports` - more imports, or Elixir handlers that replace single
      WASI functions (see `Wasmbeam.Imports`)
    * `:engine` - the engine to compile with (default `Wasmbeam.Engine.default/0`)

  ## Examples

      iex> wat = ~S[(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      ...>   (memory (export "memory") 1)
      ...>   (func (export "_start") (call $exit (i32.const 3))))]
      iex> Wasmbeam.Wasi.run(wat)
      {:ok, %{exit_code: 3, stdout: "", stderr: ""}}
  """
  @spec run(source(), keyword()) :: {:ok, result()} | {:error, Error.t()}
  def run(source, options \\ [])

  def run(source, options) when is_list(options) do
    {run_options, rest} = Keyword.split(options, @run_keys)
    {store_options, wasi_options} = Keyword.split(rest, Store.limit_keys() -- [:fuel])
    engine = Keyword.get(run_options, :engine) || Engine.default()
    imports = Keyword.get(run_options, :imports, %{})

    # The timeout is checked first but starts once the module is loaded:
    # it bounds the program, not the compile (seconds for a large module
    # that is not in the cache yet).
    with {:ok, timeout} <-
           Wasmbeam.Timeout.check(Keyword.get(run_options, :timeout, :infinity), ":timeout"),
         {:ok, cache} <- cache_option(Keyword.get(run_options, :cache, :default)),
         {:ok, module, name} <- load(engine, source, cache),
         :ok <- check_command(module),
         deadline = deadline(timeout),
         wasi_options = Keyword.put_new(wasi_options, :program_name, name),
         instance_options =
           [wasi: wasi_options, timeout: remaining(deadline)] ++
             store_options ++ Keyword.take(run_options, [:fuel]),
         {:ok, instance} <- Instance.new(module, imports, instance_options) do
      instance
      |> start(module, remaining(deadline))
      |> finish(instance, wasi_options)
    end
  end

  def run(_source, options) when is_map(options) do
    {:error,
     Error.new(
       :argument,
       "Wasmbeam.Wasi.run/2 takes a keyword list of options, got a map: #{inspect(options, limit: 5)}; " <>
         "imports go in the imports: option (Wasmbeam.Wasi.run(source, imports: imports))"
     )}
  end

  def run(_source, options),
    do:
      {:error,
       Error.new(:argument, "options must be a keyword list, got: #{inspect(options, limit: 5)}")}

  @doc "Like `run/2`, but raises `Wasmbeam.Error`."
  @spec run!(source(), keyword()) :: result()
  def run!(source, options \\ []), do: run(source, options) |> Error.unwrap!()

  @doc """
  Takes what a WASI instance has written to its captured stdout and
  stderr since the last time (for reactors and long-lived instances).

  ## Examples

      iex> wat = ~S[(module
      ...>   (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      ...>   (memory (export "memory") 1)
      ...>   (data (i32.const 16) "hi\\n")
      ...>   (func (export "hello")
      ...>     (i32.store (i32.const 0) (i32.const 16))
      ...>     (i32.store (i32.const 4) (i32.const 3))
      ...>     (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))]
      iex> instance = Wasmbeam.Instance.new!(Wasmbeam.Module.compile!(wat), %{}, wasi: [])
      iex> {:ok, []} = Wasmbeam.Instance.call(instance, "hello", [])
      iex> {:ok, []} = Wasmbeam.Instance.call(instance, "hello", [])
      iex> Wasmbeam.Wasi.output(instance)
      {:ok, %{stdout: "hi\\nhi\\n", stderr: ""}}
      iex> Wasmbeam.Wasi.output(instance)
      {:ok, %{stdout: "", stderr: ""}}
  """
  @spec output(Instance.t() | Component.Instance.t() | Store.t()) ::
          {:ok, %{stdout: binary(), stderr: binary()}} | {:error, Error.t()}
  def output(%Instance{store: store}), do: output(store)
  def output(%Component.Instance{store: store}), do: output(store)

  def output(%Store{ref: ref}) do
    with {:ok, {stdout, stderr}} <- Native.store_wasi_output(ref) do
      {:ok, %{stdout: stdout, stderr: stderr}}
    end
  end

  @doc "Like `output/1`, but raises `Wasmbeam.Error`."
  @spec output!(Instance.t() | Component.Instance.t() | Store.t()) :: %{
          stdout: binary(),
          stderr: binary()
        }
  def output!(instance_or_store), do: output(instance_or_store) |> Error.unwrap!()

  @doc false
  # Gives a new store its WASI context (used by `Wasmbeam.Instance.new/3`).
  @spec attach(Store.t(), keyword() | nil) :: :ok | {:error, Error.t()}
  def attach(_store, nil), do: :ok

  def attach(%Store{ref: ref}, options) do
    with {:ok, {native, stdin, stdout, stderr}} <- Options.to_native(options),
         {:ok, :ok} <- Native.store_set_wasi(ref, native, stdin, stdout, stderr) do
      :ok
    end
  end

  @doc false
  # Runs a reactor's `_initialize` (WASI's convention for libraries).
  @spec initialize(Instance.t(), keyword() | nil, keyword()) :: :ok | {:error, Error.t()}
  def initialize(_instance, nil, _call_options), do: :ok

  def initialize(instance, _wasi_options, call_options) do
    if List.keymember?(Instance.exports(instance), "_initialize", 0) do
      case Instance.call(instance, "_initialize", [], Keyword.take(call_options, [:timeout])) do
        {:ok, _} -> :ok
        error -> error
      end
    else
      :ok
    end
  end

  # A core command's `_start`; a component command's `wasi:cli/run` `run`,
  # whose `error` result is exit status 1 (as the Wasmtime CLI has it).
  defp start(instance, code, timeout) do
    case command_entry(code) do
      {:core, name} ->
        Instance.call(instance, name, [], timeout: timeout)

      {:component, path} ->
        case Instance.call(instance, path, [], timeout: timeout) do
          {:ok, :ok} -> {:ok, []}
          {:ok, :error} -> {:error, %{Error.new(:exit, "run returned an error") | exit_code: 1}}
          other -> other
        end
    end
  end

  defp finish({:ok, _}, instance, options), do: result(0, instance, options)

  defp finish({:error, %Error{kind: :exit, exit_code: code}}, instance, options),
    do: result(code, instance, options)

  defp finish({:error, _} = error, _instance, _options), do: error

  defp result(code, instance, options) do
    {:ok, output} = output(instance)

    {:ok,
     %{
       exit_code: code,
       stdout: if(captured?(options, :stdout), do: output.stdout),
       stderr: if(captured?(options, :stderr), do: output.stderr)
     }}
  end

  defp captured?(options, key) do
    case Keyword.get(options, key, :capture) do
      :capture -> true
      {:capture, _} -> true
      _ -> false
    end
  end

  defp check_command(code) do
    case command_entry(code) do
      {:error, _} = error -> error
      {_kind, _entry} -> :ok
    end
  end

  # Where a command starts: a core module's `_start`, or the `run`
  # function of a component's `wasi:cli/run` export (any 0.2 version).
  defp command_entry(%LinkedModule{module: module}), do: command_entry(module)

  defp command_entry(%Component{} = component) do
    component
    |> Component.exports()
    |> Enum.find_value(fn
      {"wasi:cli/run@0.2" <> _ = interface, {:interface, items}} ->
        if List.keymember?(items, "run", 0), do: {:component, {interface, "run"}}

      _ ->
        nil
    end)
    |> case do
      nil ->
        {:error,
         Error.new(
           :not_found,
           "the component exports no wasi:cli/run, so it is not a WASI command " <>
             "(a component is called through Wasmbeam.Component.Instance with wasi: options)"
         )}

      entry ->
        entry
    end
  end

  defp command_entry(module) do
    case List.keyfind(Module.exports(module), "_start", 0) do
      {"_start", {:func, [], []}} ->
        {:core, "_start"}

      {"_start", type} ->
        {:error,
         Error.new(:link, "_start must be a function of no arguments, got #{inspect(type)}")}

      nil ->
        {:error,
         Error.new(
           :not_found,
           "the module has no _start export, so it is not a WASI command " <>
             "(a reactor is used through Wasmbeam.Instance.new/3 with wasi: options)"
         )}
    end
  end

  defp load(_engine, %Module{} = module, _cache), do: {:ok, module, "main.wasm"}
  defp load(_engine, %Component{} = component, _cache), do: {:ok, component, "main.wasm"}

  defp load(_engine, %LinkedModule{wasi: true} = linked, _cache), do: {:ok, linked, "main.wasm"}

  defp load(_engine, %LinkedModule{}, _cache) do
    {:error,
     Error.new(
       :argument,
       "the linked module was not linked with WASI (LinkedModule.new/3, wasi: true)"
     )}
  end

  defp load(engine, <<0, "asm", _::binary>> = bytes, cache) do
    with {:ok, code} <- compiler(bytes).compile(engine, bytes, cache: cache == true),
         do: {:ok, code, "main.wasm"}
  end

  defp load(engine, source, cache) when is_binary(source) do
    if String.starts_with?(String.trim_leading(source), "(") do
      with {:ok, code} <- compiler(source).compile(engine, source, cache: cache == true),
           do: {:ok, code, "main.wasm"}
    else
      # A file goes through the module cache unless told otherwise: a
      # program run again is not compiled again.
      with {:ok, compiler} <- file_compiler(source),
           {:ok, code} <- compiler.compile_file(engine, source, cache: cache != false),
           do: {:ok, code, Path.basename(source)}
    end
  end

  defp load(_engine, other, _cache) do
    {:error,
     Error.new(
       :argument,
       "expected a Wasmbeam.Module, a file path or module bytes, got: #{inspect(other)}"
     )}
  end

  defp compiler(source), do: if(Component.component?(source), do: Component, else: Module)

  # A file's first bytes tell a component from a core module (or WAT text).
  defp file_compiler(path) do
    case File.open(path, [:read, :binary], &IO.binread(&1, 4096)) do
      {:ok, head} when is_binary(head) ->
        {:ok, compiler(head)}

      {:ok, _eof} ->
        {:ok, Module}

      {:error, reason} ->
        {:error, Error.new(:argument, "cannot read #{path}: #{:file.format_error(reason)}")}
    end
  end

  defp cache_option(cache) when cache in [:default, true, false], do: {:ok, cache}

  defp cache_option(other),
    do: {:error, Error.new(:argument, ":cache must be true or false, got: #{inspect(other)}")}

  defp deadline(:infinity), do: :infinity
  defp deadline(ms), do: System.monotonic_time(:millisecond) + ms

  defp remaining(:infinity), do: :infinity
  defp remaining(deadline), do: max(deadline - System.monotonic_time(:millisecond), 0)
end
