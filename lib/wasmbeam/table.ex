defmodule Wasmbeam.Table do
  @moduledoc """
  A table of references, from `Wasmbeam.Instance.table/2`.

  ## Examples

      iex> instance = Wasmbeam.Instance.new!(Wasmbeam.Module.compile!(~S[(module (table (export "t") 2 funcref) (func $f (result i32) i32.const 5) (elem (i32.const 1) $f))]))
      iex> {:ok, table} = Wasmbeam.Instance.table(instance, "t")
      iex> Wasmbeam.Table.size(table)
      {:ok, 2}
      iex> Wasmbeam.Table.get(table, 0)
      {:ok, nil}
      iex> {:ok, f} = Wasmbeam.Table.get(table, 1)
      iex> Wasmbeam.Func.call(f, [])
      {:ok, [5]}
  """

  alias Wasmbeam.{Error, Native}

  @enforce_keys [:ref, :element]
  defstruct [:ref, :name, :element]

  @type t :: %__MODULE__{
          ref: reference(),
          name: String.t() | nil,
          element: Wasmbeam.Types.value_type()
        }

  @doc "The number of elements."
  @spec size(t()) :: {:ok, non_neg_integer()} | {:error, Error.t()}
  def size(%__MODULE__{ref: ref}), do: Native.table_size(ref)

  @doc "The element at `index`: a `Wasmbeam.Func`, an externref's term, or `nil`."
  @spec get(t(), non_neg_integer()) :: {:ok, Wasmbeam.Types.value()} | {:error, Error.t()}
  def get(%__MODULE__{ref: ref}, index)
      when is_integer(index) and index >= 0 and index <= 0xFFFF_FFFF_FFFF_FFFF,
      do: Native.table_get(ref, index)

  def get(%__MODULE__{}, index),
    do:
      {:error,
       Error.new(:argument, "index must be a non-negative integer, got: #{inspect(index)}")}

  @doc "Like `size/1`, but raises `Wasmbeam.Error`."
  @spec size!(t()) :: non_neg_integer()
  def size!(table), do: size(table) |> Error.unwrap!()

  @doc "Like `get/2`, but raises `Wasmbeam.Error`."
  @spec get!(t(), non_neg_integer()) :: Wasmbeam.Types.value()
  def get!(table, index), do: get(table, index) |> Error.unwrap!()

  defimpl Inspect do
    def inspect(table, _opts), do: "#Wasmbeam.Table<#{table.name}: #{table.element}>"
  end
end
