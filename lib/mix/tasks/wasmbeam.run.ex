defmodule Mix.Tasks.Wasmbeam.Run do
  @shortdoc "Runs a WebAssembly module's function from the command line"
  @moduledoc """
  Compiles a `.wasm` or `.wat` file and calls one of its exports, printing
  the results one per line, like `wasmtime run --invoke`.

      mix wasmbeam.run --invoke fib examples/fib.wat 30
      mix wasmbeam.run --invoke add --timeout 100 add.wasm 1 2

  Arguments after the file are parsed by the function's parameter types
  (integers, floats, `inf`, `-inf`, `nan`). Without `--invoke`, the module's
  `_start` export is called (a WASI command module needs WASI, which a later
  version adds; modules without imports run today).

  ## Options

    * `--invoke NAME` - the export to call (default `_start`)
    * `--timeout MS` - stop the call after MS milliseconds
    * `--fuel N` - run with a fuel budget of N (uses a fuel-metering engine)

  Exits with status 0 on success, 1 when the module fails to load or the call
  fails (the error is printed to stderr), 2 on bad usage.
  """
  use Mix.Task

  @switches [invoke: :string, timeout: :integer, fuel: :integer]

  @impl true
  def run(argv) do
    Mix.Task.run("app.start")

    case OptionParser.parse_head(argv, strict: @switches) do
      {opts, [file | args], []} -> exit_with(execute(file, args, opts))
      {_, _, [{bad, _} | _]} -> usage("unknown or invalid option #{bad}")
      {_, [], _} -> usage("missing FILE")
    end
  end

  defp execute(file, args, opts) do
    name = Keyword.get(opts, :invoke, "_start")

    engine =
      if opts[:fuel],
        do: Wasmbeam.Engine.new!(consume_fuel: true),
        else: Wasmbeam.Engine.default()

    call_opts = Keyword.take(opts, [:timeout, :fuel])

    with {:ok, module} <- Wasmbeam.Module.compile_file(engine, file),
         {:ok, params} <- params(module, name),
         {:ok, values} <- parse_args(args, params),
         {:ok, instance} <- Wasmbeam.Instance.new(module, %{}, call_opts),
         {:ok, results} <- Wasmbeam.Instance.call(instance, name, values, call_opts) do
      Enum.each(results, &IO.puts(format(&1)))
      :ok
    end
  end

  defp params(module, name) do
    case List.keyfind(Wasmbeam.Module.exports(module), name, 0) do
      {^name, {:func, params, _results}} ->
        {:ok, params}

      nil ->
        {:error,
         Wasmbeam.Error.new(:not_found, "the module has no export named #{inspect(name)}")}

      {^name, type} ->
        {:error,
         Wasmbeam.Error.new(
           :not_found,
           "#{name} is not a function: #{Wasmbeam.Types.format(type)}"
         )}
    end
  end

  defp parse_args(args, params) when length(args) != length(params) do
    {:error,
     Wasmbeam.Error.new(
       :arity,
       "the function takes #{length(params)} argument(s), got #{length(args)}"
     )}
  end

  defp parse_args(args, params) do
    Enum.zip(args, params)
    |> Enum.reduce_while({:ok, []}, fn {text, type}, {:ok, acc} ->
      case parse(text, type) do
        {:ok, value} ->
          {:cont, {:ok, [value | acc]}}

        :error ->
          {:halt, {:error, Wasmbeam.Error.new(:type, "cannot read #{inspect(text)} as #{type}")}}
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

  defp exit_with(:ok), do: :ok

  defp exit_with({:error, %Wasmbeam.Error{} = error}) do
    IO.puts(:stderr, "error: " <> Exception.message(error))
    exit({:shutdown, 1})
  end

  defp usage(message) do
    IO.puts(
      :stderr,
      "#{message}\nusage: mix wasmbeam.run [--invoke NAME] [--timeout MS] [--fuel N] FILE [ARGS...]"
    )

    exit({:shutdown, 2})
  end
end
