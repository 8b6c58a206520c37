defmodule Wasmbeam.Func do
  @moduledoc """
  A handle to a Wasm function: an export resolved once with
  `Wasmbeam.Instance.func/2` (calls skip the lookup by name), or a
  `funcref` that came out of the guest.

  ## Examples

      iex> instance = Wasmbeam.Instance.new!(Wasmbeam.Module.compile!(~S[(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))]))
      iex> {:ok, add} = Wasmbeam.Instance.func(instance, "add")
      iex> {add.params, add.results}
      {[:i32, :i32], [:i32]}
      iex> Wasmbeam.Func.call(add, [40, 2])
      {:ok, [42]}
  """

  alias Wasmbeam.{CallOptions, Driver, Error, Native, Telemetry}

  @enforce_keys [:ref, :store]
  defstruct [:ref, :store, :name, params: [], results: []]

  @type t :: %__MODULE__{
          ref: reference(),
          store: reference(),
          name: String.t() | nil,
          params: [Wasmbeam.Types.value_type()],
          results: [Wasmbeam.Types.value_type()]
        }

  @doc "Calls the function with `args` (see `Wasmbeam.CallOptions` for options)."
  @spec call(t(), [Wasmbeam.Types.value()], CallOptions.t()) ::
          {:ok, [Wasmbeam.Types.value()]} | {:error, Error.t()}
  def call(%__MODULE__{} = func, args, options \\ []) do
    with {:ok, native} <- CallOptions.to_native(options) do
      if Telemetry.call_events?() do
        Telemetry.call_span(func.name, nil, nil, fn -> run(func, args, native) end)
      else
        func |> run(args, native) |> Telemetry.checked_call(func.name, nil, nil)
      end
    end
  end

  defp run(%__MODULE__{ref: ref, store: store}, args, native),
    do: Driver.run(store, native, &Native.func_call(ref, store, args, &1))

  @doc "Like `call/3`, but raises `Wasmbeam.Error`."
  @spec call!(t(), [Wasmbeam.Types.value()], CallOptions.t()) :: [Wasmbeam.Types.value()]
  def call!(func, args, options \\ []), do: call(func, args, options) |> Error.unwrap!()

  defimpl Inspect do
    def inspect(func, _opts) do
      type = Wasmbeam.Types.format({:func, func.params, func.results})
      "#Wasmbeam.Func<#{func.name || "(anonymous)"}: #{type}>"
    end
  end
end
