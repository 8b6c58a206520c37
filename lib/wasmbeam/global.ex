defmodule Wasmbeam.Global do
  @moduledoc """
  A global variable, from `Wasmbeam.Instance.global/2`.

  ## Examples

      iex> instance = Wasmbeam.Instance.new!(Wasmbeam.Module.compile!(~S[(module (global (export "g") (mut i64) (i64.const 7)) (global (export "k") f32 (f32.const 1.5)))]))
      iex> {:ok, g} = Wasmbeam.Instance.global(instance, "g")
      iex> Wasmbeam.Global.get(g)
      {:ok, 7}
      iex> Wasmbeam.Global.set(g, -1)
      :ok
      iex> Wasmbeam.Global.get(g)
      {:ok, -1}
      iex> {:ok, k} = Wasmbeam.Instance.global(instance, "k")
      iex> {:error, %Wasmbeam.Error{kind: :argument}} = Wasmbeam.Global.set(k, 2.0)
      iex> Wasmbeam.Global.get(k)
      {:ok, 1.5}
  """

  alias Wasmbeam.{Error, Native}

  @enforce_keys [:ref, :type, :mutable]
  defstruct [:ref, :name, :type, :mutable]

  @type t :: %__MODULE__{
          ref: reference(),
          name: String.t() | nil,
          type: Wasmbeam.Types.value_type(),
          mutable: boolean()
        }

  @doc "The current value."
  @spec get(t()) :: {:ok, Wasmbeam.Types.value()} | {:error, Error.t()}
  def get(%__MODULE__{ref: ref}), do: Native.global_get(ref)

  @doc "Sets the value of a mutable global."
  @spec set(t(), Wasmbeam.Types.value()) :: :ok | {:error, Error.t()}
  def set(%__MODULE__{ref: ref}, value), do: Native.global_set(ref, value)

  @doc "Like `get/1`, but raises `Wasmbeam.Error`."
  @spec get!(t()) :: Wasmbeam.Types.value()
  def get!(global), do: get(global) |> Error.unwrap!()

  @doc "Like `set/2`, but raises `Wasmbeam.Error`."
  @spec set!(t(), Wasmbeam.Types.value()) :: :ok
  def set!(global, value), do: set(global, value) |> Error.unwrap!()

  defimpl Inspect do
    def inspect(global, _opts) do
      mut = if global.mutable, do: "mut ", else: ""
      "#Wasmbeam.Global<#{global.name}: #{mut}#{global.type}>"
    end
  end
end
