defmodule Wasmbeam.Memory do
  @moduledoc """
  A linear memory, from `Wasmbeam.Instance.memory/2`. Reads and writes are
  bounds-checked: an access past the end is an `:argument` error, never a
  crash. Large reads and writes (over 64 KiB) run on a dirty scheduler.

  ## Examples

      iex> instance = Wasmbeam.Instance.new!(Wasmbeam.Module.compile!(~S[(module (memory (export "mem") 1 4))]))
      iex> {:ok, memory} = Wasmbeam.Instance.memory(instance, "mem")
      iex> Wasmbeam.Memory.write(memory, 100, "hello")
      :ok
      iex> Wasmbeam.Memory.read(memory, 100, 5)
      {:ok, "hello"}
      iex> Wasmbeam.Memory.size(memory)
      {:ok, 65536}
      iex> Wasmbeam.Memory.grow(memory, 1)
      {:ok, 1}
      iex> Wasmbeam.Memory.pages(memory)
      {:ok, 2}
  """

  alias Wasmbeam.{Error, Native}

  @enforce_keys [:ref]
  defstruct [:ref, :name]

  @type t :: %__MODULE__{ref: reference(), name: String.t() | nil}

  @large 64 * 1024
  @max_u64 0xFFFF_FFFF_FFFF_FFFF

  defguardp is_u64(n) when is_integer(n) and n >= 0 and n <= @max_u64

  @doc "The size in bytes."
  @spec size(t()) :: {:ok, non_neg_integer()} | {:error, Error.t()}
  def size(%__MODULE__{ref: ref}) do
    with {:ok, {bytes, _pages}} <- Native.memory_size(ref), do: {:ok, bytes}
  end

  @doc "Like `size/1`, but raises `Wasmbeam.Error`."
  @spec size!(t()) :: non_neg_integer()
  def size!(memory), do: size(memory) |> Error.unwrap!()

  @doc "The size in pages (64 KiB each, unless the module set another page size)."
  @spec pages(t()) :: {:ok, non_neg_integer()} | {:error, Error.t()}
  def pages(%__MODULE__{ref: ref}) do
    with {:ok, {_bytes, pages}} <- Native.memory_size(ref), do: {:ok, pages}
  end

  @doc "Like `pages/1`, but raises `Wasmbeam.Error`."
  @spec pages!(t()) :: non_neg_integer()
  def pages!(memory), do: pages(memory) |> Error.unwrap!()

  @doc "Grows the memory by `pages`; returns the previous size in pages."
  @spec grow(t(), non_neg_integer()) :: {:ok, non_neg_integer()} | {:error, Error.t()}
  def grow(%__MODULE__{ref: ref}, pages) when is_u64(pages),
    do: Native.memory_grow(ref, pages)

  def grow(%__MODULE__{}, pages),
    do:
      {:error,
       Error.new(:argument, "pages must be an integer in 0..2^64-1, got: #{inspect(pages)}")}

  @doc "Like `grow/2`, but raises `Wasmbeam.Error`."
  @spec grow!(t(), non_neg_integer()) :: non_neg_integer()
  def grow!(memory, pages), do: grow(memory, pages) |> Error.unwrap!()

  @doc "Reads `length` bytes at `offset`."
  @spec read(t(), non_neg_integer(), non_neg_integer()) :: {:ok, binary()} | {:error, Error.t()}
  def read(%__MODULE__{ref: ref}, offset, length)
      when is_u64(offset) and is_u64(length) do
    if length > @large,
      do: Native.memory_read_large(ref, offset, length),
      else: Native.memory_read(ref, offset, length)
  end

  def read(%__MODULE__{}, offset, length),
    do:
      {:error,
       Error.new(
         :argument,
         "offset and length must be non-negative integers, got: #{inspect({offset, length})}"
       )}

  @doc "Like `read/3`, but raises `Wasmbeam.Error`."
  @spec read!(t(), non_neg_integer(), non_neg_integer()) :: binary()
  def read!(memory, offset, length), do: read(memory, offset, length) |> Error.unwrap!()

  @doc "Writes `bytes` at `offset`."
  @spec write(t(), non_neg_integer(), binary()) :: :ok | {:error, Error.t()}
  def write(%__MODULE__{ref: ref}, offset, bytes)
      when is_u64(offset) and is_binary(bytes) do
    if byte_size(bytes) > @large,
      do: Native.memory_write_large(ref, offset, bytes),
      else: Native.memory_write(ref, offset, bytes)
  end

  def write(%__MODULE__{}, offset, bytes),
    do:
      {:error,
       Error.new(
         :argument,
         "expected a non-negative offset and a binary, got: #{inspect({offset, bytes})}"
       )}

  @doc "Like `write/3`, but raises `Wasmbeam.Error`."
  @spec write!(t(), non_neg_integer(), binary()) :: :ok
  def write!(memory, offset, bytes), do: write(memory, offset, bytes) |> Error.unwrap!()

  defimpl Inspect do
    def inspect(memory, _opts) do
      case Wasmbeam.Memory.pages(memory) do
        {:ok, pages} -> "#Wasmbeam.Memory<#{memory.name}: #{pages} page(s)>"
        {:error, _} -> "#Wasmbeam.Memory<#{memory.name}: busy>"
      end
    end
  end
end
