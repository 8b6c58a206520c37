defmodule Wasmbeam.Store do
  @moduledoc """
  A store holds instances and their memories, tables and globals, and the
  limits and fuel that apply to them. Instances can only import from
  instances of the same store, so link modules together by instantiating
  them into one store (`Wasmbeam.Instance.new(module, imports, store: store)`).

  A store runs one call at a time; different stores run in parallel. A call
  that finds the store running another call waits for it, by default: the process is queued in
  the store and sleeps in `receive`, holding no thread and polling
  nothing, until the store is free, then tries again. How long it waits is
  bounded by the call's `:timeout` (`:infinity` by default); a call whose
  timeout passes while it waits returns a `:busy` error without having
  run, and leaves no message behind. With `wait: false` (see
  `Wasmbeam.CallOptions`), or `timeout: 0`, a call finding the store busy
  returns the `:busy` error at once. A process never waits for a store
  that it is itself running (a host function calling its own instance
  directly): it gets `:busy` at once, and uses its `Wasmbeam.Caller`
  instead. Operations that run no guest code and take no options
  (`Wasmbeam.Memory`, `Wasmbeam.Global` and `Wasmbeam.Table` reads and
  writes, `Wasmbeam.Instance.export/2` and the other lookups) never wait:
  on a busy store they return `:busy` at once.

  ## Options for `new/2`

  `new/1` takes the options alone and uses the default engine
  (`Wasmbeam.Store.new(memory_size: 1_048_576)`).

    * `:memory_size` - the most bytes any one linear memory may grow to
      (default 256 MiB; `:infinity` for no limit)
    * `:table_elements` - the most elements any one table may hold
      (default 1,000,000; `:infinity` for no limit)
    * `:instances`, `:tables`, `:memories` - how many the store may hold
      (no limit by default)
    * `:fuel` - initial fuel (engines with `consume_fuel: true`)

  The defaults bound what one instruction can do: `memory.fill`,
  `memory.copy`, `table.grow` and `table.fill` run without a time-slice
  check inside them, so their size is the time a guest holds a scheduler
  in one go. Without limits a single `table.grow` by 10^9 took 7.7 s and a
  4 GiB `memory.fill` 4.4 s; under the defaults the longest such stall is
  the one `bench/stalls.exs` measures (see "Reliability" in the README).
  Raise them for guests that need more, knowing that cost.

  A `memory.grow` past the limit returns -1 to the guest, as the spec says;
  instantiating a module whose initial memory is over the limit fails with
  a `:limit` error.

  ## Examples

      iex> {:ok, store} = Wasmbeam.Store.new(Wasmbeam.Engine.default(), memory_size: 1_048_576)
      iex> is_reference(store.ref)
      true
      iex> {:ok, store} = Wasmbeam.Store.new(memory_size: 1_048_576)
      iex> store.engine == Wasmbeam.Engine.default()
      true
  """

  alias Wasmbeam.{Engine, Error, Native}

  @enforce_keys [:ref, :engine]
  defstruct [:ref, :engine]

  @type t :: %__MODULE__{ref: reference(), engine: Engine.t()}

  @max_u64 0xFFFF_FFFF_FFFF_FFFF
  @limit_keys [:memory_size, :table_elements, :instances, :tables, :memories, :fuel]
  @default_limits %{memory_size: 256 * 1024 * 1024, table_elements: 1_000_000}

  @doc "Creates a store on `engine` (see the module doc for options)."
  @spec new(Engine.t(), keyword()) :: {:ok, t()} | {:error, Error.t()}
  def new(engine \\ Engine.default(), options \\ [])

  # `new(options)`: the default engine.
  def new(options, []) when is_list(options), do: new(Engine.default(), options)

  def new(%Engine{} = engine, options) when is_list(options) do
    defaults = Map.merge(Map.new(@limit_keys, &{&1, nil}), @default_limits)

    with {:ok, native} <- native_options(options, defaults),
         {:ok, ref} <- Native.store_new(engine.ref, native) do
      {:ok, %__MODULE__{ref: ref, engine: engine}}
    end
  end

  def new(%Engine{}, options),
    do:
      {:error,
       Error.new(:argument, "store options must be a keyword list, got: #{inspect(options)}")}

  def new(other, _options),
    do:
      {:error,
       Error.new(:argument, "expected an engine (a %Wasmbeam.Engine{}), got: #{inspect(other)}")}

  @doc "Like `new/2`, but raises `Wasmbeam.Error`."
  @spec new!(Engine.t(), keyword()) :: t()
  def new!(engine \\ Engine.default(), options \\ []), do: new(engine, options) |> Error.unwrap!()

  @doc false
  @spec limit_keys() :: [atom()]
  def limit_keys, do: @limit_keys

  @doc false
  @spec default_limits() :: %{atom() => non_neg_integer()}
  def default_limits, do: @default_limits

  defp native_options([], acc), do: {:ok, acc}

  defp native_options([{key, n} | rest], acc)
       when key in @limit_keys and is_integer(n) and n >= 0 and n <= @max_u64,
       do: native_options(rest, Map.put(acc, key, n))

  defp native_options([{key, :infinity} | rest], acc) when key in @limit_keys and key != :fuel,
    do: native_options(rest, Map.put(acc, key, nil))

  defp native_options([other | _], _acc),
    do: {:error, Error.new(:argument, "invalid store option: #{inspect(other)}")}

  defp native_options(improper, _acc),
    do:
      {:error,
       Error.new(
         :argument,
         "store options must be a keyword list, got an improper tail: #{inspect(improper)}"
       )}

  @doc """
  The fuel the store has left (engines with `consume_fuel: true`).

      iex> engine = Wasmbeam.Engine.new!(consume_fuel: true)
      iex> store = Wasmbeam.Store.new!(engine, fuel: 1_000)
      iex> Wasmbeam.Store.fuel(store)
      {:ok, 1000}
  """
  @spec fuel(t()) :: {:ok, non_neg_integer()} | {:error, Error.t()}
  def fuel(%__MODULE__{ref: ref}), do: Native.store_fuel(ref)

  @doc "Like `fuel/1`, but raises `Wasmbeam.Error`."
  @spec fuel!(t()) :: non_neg_integer()
  def fuel!(store), do: fuel(store) |> Error.unwrap!()

  @doc """
  The fuel the store's last call used (engines with `consume_fuel: true`).

      iex> engine = Wasmbeam.Engine.new!(consume_fuel: true)
      iex> module = Wasmbeam.Module.compile!(engine, ~S[(module (func (export "f") (result i32) i32.const 1 i32.const 2 i32.add))])
      iex> instance = Wasmbeam.Instance.new!(module)
      iex> {:ok, [3]} = Wasmbeam.Instance.call(instance, "f", [], fuel: 100)
      iex> {:ok, used} = Wasmbeam.Store.fuel_consumed(instance.store)
      iex> {:ok, left} = Wasmbeam.Store.fuel(instance.store)
      iex> used > 0 and used + left == 100
      true
  """
  @spec fuel_consumed(t()) :: {:ok, non_neg_integer()} | {:error, Error.t()}
  def fuel_consumed(%__MODULE__{ref: ref}), do: Native.store_fuel_consumed(ref)

  @doc "Like `fuel_consumed/1`, but raises `Wasmbeam.Error`."
  @spec fuel_consumed!(t()) :: non_neg_integer()
  def fuel_consumed!(store), do: fuel_consumed(store) |> Error.unwrap!()

  @doc "Sets the fuel the store has left."
  @spec set_fuel(t(), non_neg_integer()) :: :ok | {:error, Error.t()}
  def set_fuel(%__MODULE__{}, fuel)
      when not (is_integer(fuel) and fuel >= 0 and fuel <= @max_u64),
      do:
        {:error,
         Error.new(:argument, "fuel must be an integer in 0..2^64-1, got: #{inspect(fuel)}")}

  def set_fuel(%__MODULE__{ref: ref}, fuel) do
    case Native.store_set_fuel(ref, fuel) do
      {:ok, :ok} -> :ok
      {:error, _} = error -> error
    end
  end

  @doc "Like `set_fuel/2`, but raises `Wasmbeam.Error`."
  @spec set_fuel!(t(), non_neg_integer()) :: :ok
  def set_fuel!(store, fuel), do: set_fuel(store, fuel) |> Error.unwrap!()

  defimpl Inspect do
    def inspect(store, _opts), do: "#Wasmbeam.Store<#{inspect(store.ref)}>"
  end
end
