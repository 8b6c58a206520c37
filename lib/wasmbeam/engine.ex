defmodule Wasmbeam.Engine do
  @moduledoc """
  An engine compiles modules and runs their code. Engines are cheap to share
  and expensive to create: one engine serves any number of modules, stores
  and processes. Most programs only need `default/0`.

  One background thread, the epoch ticker, serves every engine: it makes
  running guests yield back to the BEAM every ~100 µs so that no guest
  holds a scheduler for long, and enforces `timeout:` on calls. It only
  touches engines that ran a call lately and parks when none did, so an
  engine per tenant costs no thread. It never runs guest code, so busy
  guests cannot starve it. (Engines created with `ticker_realtime: false`
  share a second, ordinary thread when real-time scheduling is granted to
  the first.)

  Where the OS allows it (root, `CAP_SYS_NICE`, or an `RLIMIT_RTPRIO` above
  0, e.g. `LimitRTPRIO=1` in a systemd unit), the ticker runs at the lowest
  real-time priority, so that CPU-bound guests cannot delay its ticks
  either; `ticker_realtime?/1` tells whether it does. It works for about a
  microsecond per tick. To keep it an ordinary thread, create the engine
  with `ticker_realtime: false`, or (for every engine, the default one
  included) start the VM with `WASMBEAM_TICKER_REALTIME=0` in its
  environment.

  ## Examples

      iex> {:ok, engine} = Wasmbeam.Engine.new(consume_fuel: true)
      iex> engine.config.consume_fuel
      true

      iex> Wasmbeam.Engine.default() == Wasmbeam.Engine.default()
      true
  """

  alias Wasmbeam.Engine.Config

  @enforce_keys [:ref, :config]
  defstruct [:ref, :config]

  @type t :: %__MODULE__{ref: reference(), config: Config.t()}

  @default_key {__MODULE__, :default}

  @doc "Creates an engine from `Wasmbeam.Engine.Config` options."
  @spec new(keyword() | Config.t()) :: {:ok, t()} | {:error, Wasmbeam.Error.t()}
  def new(options \\ [])

  def new(%Config{} = config) do
    # A struct built or changed by hand is checked as options are.
    with {:ok, config} <- Config.validate(config), do: create(config)
  end

  def new(options) when is_list(options) do
    with {:ok, config} <- Config.new(options), do: create(config)
  end

  def new(other),
    do:
      {:error,
       Wasmbeam.Error.new(
         :argument,
         "engine options must be a keyword list or a %Wasmbeam.Engine.Config{}, got: #{inspect(other)}"
       )}

  defp create(config) do
    case Wasmbeam.Native.engine_new(Config.to_native(config)) do
      {:ok, ref} -> {:ok, %__MODULE__{ref: ref, config: config}}
      {:error, _} = error -> error
    end
  end

  @doc "Like `new/1`, but raises `Wasmbeam.Error`."
  @spec new!(keyword() | Config.t()) :: t()
  def new!(options \\ []), do: options |> new() |> Wasmbeam.Error.unwrap!()

  @doc """
  The VM's shared engine with the default configuration, created on first
  use and kept for the life of the VM.
  """
  @spec default() :: t()
  def default do
    case :persistent_term.get(@default_key, nil) do
      nil -> create_default()
      engine -> engine
    end
  end

  defp create_default do
    # A global lock so that concurrent first callers share one engine.
    :global.trans(
      {@default_key, self()},
      fn ->
        case :persistent_term.get(@default_key, nil) do
          nil ->
            engine = new!()
            :persistent_term.put(@default_key, engine)
            engine

          engine ->
            engine
        end
      end,
      [node()]
    )
  end

  @doc """
  A number that is equal for two engines exactly when modules serialized by
  one can be deserialized by the other.
  """
  @spec compatibility_hash(t()) :: non_neg_integer()
  def compatibility_hash(%__MODULE__{ref: ref}),
    do: ref |> Wasmbeam.Native.engine_compatibility_hash() |> checked()

  @doc """
  Whether the engine's epoch ticker thread runs at real-time priority (see
  the module docs). Either way guests are time-sliced and timeouts hold;
  real-time priority keeps the slices short while guests keep every CPU
  busy.

      iex> is_boolean(Wasmbeam.Engine.ticker_realtime?(Wasmbeam.Engine.default()))
      true
  """
  @spec ticker_realtime?(t()) :: boolean()
  def ticker_realtime?(%__MODULE__{ref: ref}),
    do: ref |> Wasmbeam.Native.engine_ticker_realtime() |> checked()

  # A handle whose reference Wasmbeam did not make answers an error: raise
  # it, as the value these functions return has no room for one.
  defp checked({:error, %Wasmbeam.Error{} = error}), do: raise(error)
  defp checked(value), do: value

  defimpl Inspect do
    def inspect(engine, _opts) do
      c = engine.config
      "#Wasmbeam.Engine<#{c.strategy}, fuel: #{c.consume_fuel}, epoch: #{c.epoch_interruption}>"
    end
  end
end
