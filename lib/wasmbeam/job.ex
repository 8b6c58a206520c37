defmodule Wasmbeam.Job do
  @moduledoc """
  Runs one export of a module as a background job with a budget, and
  answers with the values a job runner such as Oban expects from
  `perform/1`.

  Wasmbeam does not depend on Oban; this module is the part of a worker
  that is about WebAssembly. A complete worker:

      defmodule MyApp.WasmWorker do
        use Oban.Worker, queue: :wasm, max_attempts: 5

        @impl Oban.Worker
        def perform(%Oban.Job{args: %{"export" => export, "args" => args}}) do
          Wasmbeam.Job.run({:pool, MyApp.Plugins}, export, args, timeout: 5_000)
        end
      end

  ## What it returns

  | outcome | returned | why |
  |---|---|---|
  | the export returned nothing | `:ok` | |
  | one result | `{:ok, value}` | |
  | several results | `{:ok, [value, ...]}` | |
  | `:timeout`, `:busy`, `:down`, `:cancelled`, `:poisoned`, `:panic` | `{:error, error}` | may succeed on a retry |
  | `:overloaded` (the pool or instance refused the work) | `{:snooze, seconds}` | try later, without counting an attempt |
  | a trap, exhausted fuel, a bad module, a missing export, wrong arguments, a store limit | `{:cancel, error}` | deterministic: a retry would fail the same way |

  `error` is the `%Wasmbeam.Error{}`. `outcome/2` is the same mapping for
  results you obtained yourself.

  ## Sources

    * `{:pool, pool}` - an instance checked out of a `Wasmbeam.Pool`
      (the way to run many jobs: instantiation is paid once per instance)
    * `{:instance, server}` - an instance process (`Wasmbeam.Instance.start_link/1`)
    * `{:file, path}` - a `.wasm` or `.wat` file, compiled and instantiated
      for this job
    * `{:bytes, binary}` - wasm bytes or WAT text, likewise
    * a `%Wasmbeam.Module{}` - instantiated for this job

  ## Arguments

  Job arguments usually come from JSON, so `args` is a list of JSON
  values, converted by the export's parameter types (known for every
  source but `{:instance, server}`, whose arguments are passed as they are):

    * `i32`/`i64`: integers; floats with an integral value (`3.0`) and
      booleans (`true` is 1) are accepted
    * `f32`/`f64`: numbers (integers are converted)
    * other types: passed as they are (see `Wasmbeam.Types`)

  Results come back as `Wasmbeam.Types` values: integers and floats
  (special floats such as NaN are atoms), all encodable as JSON.

  ## Options

    * `:timeout` - ms the call may run (default 60_000)
    * `:fuel` - fuel for the call (engines with `consume_fuel: true`)
    * `:memory` - the most bytes a linear memory may grow to (new
      instances only: `{:file, _}`, `{:bytes, _}`, a module)
    * `:imports`, `:engine` - for new instances
    * `:checkout_timeout` - for `{:pool, _}` (default: the pool's)
    * `:snooze` - seconds to snooze when overloaded (default 5)
  """

  alias Wasmbeam.{Error, Instance, Module, Pool}

  @type source ::
          {:pool, Pool.pool()}
          | {:instance, GenServer.server()}
          | {:file, Path.t()}
          | {:bytes, binary()}
          | Module.t()

  @type result ::
          :ok
          | {:ok, term()}
          | {:error, Error.t()}
          | {:cancel, Error.t()}
          | {:snooze, pos_integer()}

  @retryable [:timeout, :busy, :down, :cancelled, :poisoned, :panic]
  @default_timeout 60_000
  @default_snooze 5

  @doc """
  Runs `export` with `args` on an instance from `source` (see the module
  doc) and maps the outcome to a job result.

  ## Examples

      iex> wat = ~S[(module (func (export "div") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_s))]
      iex> Wasmbeam.Job.run({:bytes, wat}, "div", [7, 2])
      {:ok, 3}
      iex> {:cancel, %Wasmbeam.Error{kind: :trap}} = Wasmbeam.Job.run({:bytes, wat}, "div", [7, 0])
      iex> {:error, %Wasmbeam.Error{kind: :timeout}} = Wasmbeam.Job.run({:bytes, ~S[(module (func (export "f") (loop br 0)))]}, "f", [], timeout: 10)
      iex> {:cancel, %Wasmbeam.Error{kind: :not_found}} = Wasmbeam.Job.run({:bytes, wat}, "nope", [])
  """
  @spec run(source(), String.t(), list(), keyword()) :: result()
  def run(source, export, args, options \\ [])

  def run(source, export, args, options)
      when is_binary(export) and is_list(args) and is_list(options) do
    source
    |> execute(export, args, options)
    |> outcome(options)
  end

  def run(_source, export, args, options) do
    {:cancel,
     Error.new(
       :argument,
       "expected an export name, a list of arguments and options, got: " <>
         "#{inspect(export)}, #{inspect(args)}, #{inspect(options)}"
     )}
  end

  @doc """
  Maps the result of a call (`{:ok, results}` or `{:error, error}`) to a
  job result, as `run/4` does. `options` may give `:snooze` (seconds,
  default 5).

  ## Examples

      iex> Wasmbeam.Job.outcome({:ok, []})
      :ok
      iex> Wasmbeam.Job.outcome({:ok, [42]})
      {:ok, 42}
      iex> Wasmbeam.Job.outcome({:ok, [1, 2.5]})
      {:ok, [1, 2.5]}
      iex> Wasmbeam.Job.outcome({:error, %Wasmbeam.Error{kind: :overloaded, message: "full"}}, snooze: 30)
      {:snooze, 30}
      iex> Wasmbeam.Job.outcome({:error, %Wasmbeam.Error{kind: :timeout, message: "slow"}})
      {:error, %Wasmbeam.Error{kind: :timeout, message: "slow"}}
      iex> Wasmbeam.Job.outcome({:error, %Wasmbeam.Error{kind: :trap, message: "unreachable"}})
      {:cancel, %Wasmbeam.Error{kind: :trap, message: "unreachable"}}
  """
  @spec outcome({:ok, list()} | {:error, Error.t()}, keyword()) :: result()
  def outcome(result, options \\ [])
  def outcome({:ok, []}, _options), do: :ok
  def outcome({:ok, [value]}, _options), do: {:ok, value}
  def outcome({:ok, values}, _options) when is_list(values), do: {:ok, values}
  # What a component's function answers (through a pool or an instance
  # process): `:ok` for no result, or its one result.
  def outcome(:ok, _options), do: :ok
  def outcome({:ok, value}, _options), do: {:ok, value}

  def outcome({:error, %Error{kind: :overloaded}}, options),
    do: {:snooze, Keyword.get(options, :snooze, @default_snooze)}

  def outcome({:error, %Error{kind: kind} = error}, _options) when kind in @retryable,
    do: {:error, error}

  def outcome({:error, %Error{} = error}, _options), do: {:cancel, error}

  @doc """
  Converts JSON-style arguments to the types of `params` (see "Arguments"
  in the module doc).

  ## Examples

      iex> Wasmbeam.Job.coerce_args([:i32, :f64, :i64], [3.0, 2, true])
      {:ok, [3, 2.0, 1]}
      iex> {:error, %Wasmbeam.Error{kind: :type}} = Wasmbeam.Job.coerce_args([:i32], ["three"])
  """
  @spec coerce_args([atom()], list()) :: {:ok, list()} | {:error, Error.t()}
  def coerce_args(params, args) do
    cond do
      not proper_list?(params) ->
        {:error,
         Error.new(:argument, "parameter types must be a proper list, got: #{inspect(params)}")}

      not proper_list?(args) ->
        {:error, Error.new(:argument, "arguments must be a proper list, got: #{inspect(args)}")}

      # The call reports the wrong number.
      length(params) != length(args) ->
        {:ok, args}

      true ->
        coerce_each(params, args)
    end
  end

  defp proper_list?([]), do: true
  defp proper_list?([_ | rest]), do: proper_list?(rest)
  defp proper_list?(_), do: false

  defp coerce_each(params, args) do
    params
    |> Enum.zip(args)
    |> Enum.with_index()
    |> Enum.reduce_while({:ok, []}, fn {{type, value}, index}, {:ok, acc} ->
      case coerce(type, value) do
        {:ok, value} ->
          {:cont, {:ok, [value | acc]}}

        :error ->
          {:halt,
           {:error,
            Error.new(:type, "argument #{index + 1} must be #{type}, got: #{inspect(value)}")}}
      end
    end)
    |> case do
      {:ok, values} -> {:ok, Enum.reverse(values)}
      error -> error
    end
  end

  defp coerce(int, value) when int in [:i32, :i64] do
    cond do
      is_integer(value) -> {:ok, value}
      is_boolean(value) -> {:ok, if(value, do: 1, else: 0)}
      is_float(value) and value == trunc(value) -> {:ok, trunc(value)}
      true -> :error
    end
  end

  defp coerce(float, value) when float in [:f32, :f64] do
    cond do
      is_integer(value) -> {:ok, value * 1.0}
      is_float(value) or value in [:nan, :infinity, :neg_infinity] -> {:ok, value}
      true -> :error
    end
  end

  defp coerce(_type, value), do: {:ok, value}

  ## Running

  defp execute({:pool, pool}, export, args, options) do
    {checkout, _} = Keyword.split(options, [:checkout_timeout])
    Pool.checkout(pool, &call(&1, export, args, options), checkout)
  end

  defp execute({:instance, server}, export, args, options),
    do: Instance.call(server, export, args, call_options(options))

  defp execute({:file, path}, export, args, options) do
    case File.read(path) do
      {:ok, bytes} ->
        execute({:bytes, bytes}, export, args, options)

      {:error, reason} ->
        {:error,
         Error.new(:argument, "cannot read #{inspect(path)}: #{:file.format_error(reason)}")}
    end
  end

  defp execute({:bytes, bytes}, export, args, options) when is_binary(bytes) do
    with {:ok, module} <-
           Module.compile(Keyword.get(options, :engine, Wasmbeam.Engine.default()), bytes),
         do: execute(module, export, args, options)
  end

  defp execute(%Module{} = module, export, args, options) do
    memory = if options[:memory], do: [memory_size: options[:memory]], else: []

    with {:ok, instance} <-
           Instance.new(
             module,
             Keyword.get(options, :imports, %{}),
             memory ++ call_options(options)
           ) do
      call(instance, export, args, options)
    end
  end

  # A component's call answers its one result (or `:ok` for none): as a
  # job result it is the value itself, whatever its shape (a list too).
  defp execute(%Wasmbeam.Component{} = component, export, args, options) do
    memory = if options[:memory], do: [memory_size: options[:memory]], else: []

    with {:ok, instance} <-
           Instance.new(
             component,
             Keyword.get(options, :imports, %{}),
             memory ++ call_options(options)
           ) do
      case Instance.call(instance, export, args, call_options(options)) do
        :ok -> {:ok, []}
        {:ok, value} -> {:ok, [value]}
        {:error, _} = error -> error
      end
    end
  end

  defp execute(other, _export, _args, _options) do
    {:error,
     Error.new(
       :argument,
       "a job source is {:pool, pool}, {:instance, server}, {:file, path}, {:bytes, binary}, " <>
         "a %Wasmbeam.Module{} or a %Wasmbeam.Component{}, got: #{inspect(other)}"
     )}
  end

  defp call(instance, export, args, options) do
    with {:ok, args} <- coerce_for(instance, export, args),
         do: Instance.call(instance, export, args, call_options(options))
  end

  defp coerce_for(instance, export, args) do
    case List.keyfind(Module.exports(instance.module), export, 0) do
      {_, {:func, params, _results}} -> coerce_args(params, args)
      # Not a function: the call reports it.
      _ -> {:ok, args}
    end
  end

  defp call_options(options) do
    [timeout: Keyword.get(options, :timeout, @default_timeout)] ++
      Keyword.take(options, [:fuel])
  end
end
