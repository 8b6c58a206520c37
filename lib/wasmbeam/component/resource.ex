defmodule Wasmbeam.Component.Resource do
  @moduledoc """
  A resource a component's guest owns, handed to Elixir as an `own<R>`
  result. Pass it back to functions that take `own<R>` (the guest takes it
  back: the handle cannot be used again) or `borrow<R>` (it stays yours).

  Drop it with `drop/2` (the guest's destructor runs as a call, with the
  call options given), or let it go: when the handle is garbage collected,
  the resource is dropped in the guest at the start of the store's next
  component call. A handle used after it was dropped or handed over is an
  `:argument` error, never a use of freed state.
  """

  alias Wasmbeam.{CallOptions, Driver, Error, Native}

  @enforce_keys [:ref, :store]
  defstruct [:ref, :store]

  @type t :: %__MODULE__{ref: reference(), store: reference()}

  @doc "Drops the resource in the guest now."
  @spec drop(t(), CallOptions.t()) :: :ok | {:error, Error.t()}
  def drop(resource, options \\ [])

  def drop(%__MODULE__{ref: ref, store: store_ref}, options) do
    with {:ok, native} <- CallOptions.to_native(options) do
      Driver.run(store_ref, native, &Native.component_resource_drop(ref, store_ref, &1))
    end
  end

  def drop(other, _options),
    do:
      {:error,
       Error.new(:argument, "expected a %Wasmbeam.Component.Resource{}, got: #{inspect(other)}")}

  @doc "Like `drop/2`, but raises `Wasmbeam.Error`."
  @spec drop!(t(), CallOptions.t()) :: :ok
  def drop!(resource, options \\ []) do
    case drop(resource, options) do
      :ok -> :ok
      {:error, error} -> raise error
    end
  end

  defimpl Inspect do
    def inspect(_resource, _opts), do: "#Wasmbeam.Component.Resource<>"
  end
end
