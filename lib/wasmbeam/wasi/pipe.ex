defmodule Wasmbeam.Wasi.Pipe do
  @moduledoc """
  A pipe into a WASI program's stdin, written by any process while the
  program runs.

  A guest that reads an empty pipe waits without holding any thread: the
  process driving it sleeps in `receive` until a write or `close/1` wakes
  it. Closing the pipe is end-of-file for the guest.

  ## Examples

      iex> pipe = Wasmbeam.Wasi.Pipe.new()
      iex> Wasmbeam.Wasi.Pipe.write(pipe, "hello\\n")
      :ok
      iex> Wasmbeam.Wasi.Pipe.close(pipe)
      :ok
      iex> {:error, %Wasmbeam.Error{message: "the pipe is closed"}} = Wasmbeam.Wasi.Pipe.write(pipe, "late")
  """

  alias Wasmbeam.{Error, Native}

  @enforce_keys [:ref]
  defstruct [:ref]

  @type t :: %__MODULE__{ref: reference()}

  @doc "Creates an empty, open pipe; pass it as `stdin:` (see `Wasmbeam.Wasi.Options`)."
  @spec new() :: t()
  def new, do: %__MODULE__{ref: Native.wasi_pipe_new()}

  @doc "Appends `data` (any iodata) to the pipe."
  @spec write(t(), iodata()) :: :ok | {:error, Error.t()}
  def write(%__MODULE__{ref: ref}, data) do
    case IO.iodata_to_binary(data) do
      bytes -> Native.wasi_pipe_write(ref, bytes) |> ok()
    end
  rescue
    ArgumentError -> {:error, Error.new(:argument, "data must be iodata, got: #{inspect(data)}")}
  end

  @doc "Like `write/2`, but raises `Wasmbeam.Error`."
  @spec write!(t(), iodata()) :: :ok
  def write!(pipe, data), do: write(pipe, data) |> Error.unwrap!()

  @doc "Closes the pipe: the guest reads what is left, then end-of-file."
  @spec close(t()) :: :ok | {:error, Error.t()}
  def close(%__MODULE__{ref: ref}), do: Native.wasi_pipe_close(ref)

  defp ok({:ok, :ok}), do: :ok
  defp ok(error), do: error

  defimpl Inspect do
    def inspect(pipe, _opts), do: "#Wasmbeam.Wasi.Pipe<#{inspect(pipe.ref)}>"
  end
end
