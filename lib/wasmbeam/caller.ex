defmodule Wasmbeam.Caller do
  @moduledoc """
  Given to a host function's handler as its first argument: the way back
  into the guest that called it, valid until the handler returns and only
  in the process that runs the handler (another process gets an
  `:argument` error: it would receive the wake-ups meant for the handler's
  process).

  Through the caller a handler reads and writes the calling instance's
  exported memory, reads and sets its exported globals, reads the fuel
  left, and calls its exports — nested as deep as the guest's stack allows,
  without deadlock, because the nested call is driven by the same process
  that is running the handler.

  ## Examples

  A guest that logs a string from its memory through an Elixir handler:

      iex> wat = ~S[(module
      ...>   (import "env" "log" (func $log (param i32 i32)))
      ...>   (memory (export "memory") 1)
      ...>   (data (i32.const 16) "hello from wasm")
      ...>   (func (export "run") (call $log (i32.const 16) (i32.const 15))))]
      iex> log = fn caller, ptr, len ->
      ...>   {:ok, text} = Wasmbeam.Caller.read(caller, ptr, len)
      ...>   send(self(), {:logged, text})
      ...>   :ok
      ...> end
      iex> {:ok, instance} = Wasmbeam.load(wat, %{"env" => %{"log" => {:fn, [:i32, :i32], [], log}}})
      iex> Wasmbeam.Instance.call(instance, "run", [])
      {:ok, []}
      iex> receive do {:logged, text} -> text end
      "hello from wasm"
  """

  alias Wasmbeam.{Driver, Error, Native}

  @enforce_keys [:store, :id, :owner]
  defstruct [:store, :id, :owner]

  @typedoc """
  `owner` is the process that runs the host function (the calling process
  for an in-process handler, the handler process for `{:process, server}`):
  only it may use the caller.
  """
  @type t :: %__MODULE__{store: reference(), id: pos_integer(), owner: pid()}

  @doc "Reads `length` bytes at `offset` of the caller's memory (export `memory` by default)."
  @spec read(t(), non_neg_integer(), non_neg_integer(), String.t()) ::
          {:ok, binary()} | {:error, Error.t()}
  def read(caller, offset, length, memory \\ "memory"),
    do: op(caller, {:memory_read, memory, offset, length})

  @doc "Writes `bytes` at `offset` of the caller's memory."
  @spec write(t(), non_neg_integer(), binary(), String.t()) :: :ok | {:error, Error.t()}
  def write(caller, offset, bytes, memory \\ "memory")

  def write(caller, offset, bytes, memory) when is_binary(bytes) do
    with {:ok, :ok} <- op(caller, {:memory_write, memory, offset, bytes}), do: :ok
  end

  def write(_caller, _offset, bytes, _memory),
    do: {:error, Error.new(:argument, "bytes must be a binary, got: #{inspect(bytes, limit: 5)}")}

  @doc "The size of the caller's memory in bytes."
  @spec memory_size(t(), String.t()) :: {:ok, non_neg_integer()} | {:error, Error.t()}
  def memory_size(caller, memory \\ "memory") do
    with {:ok, {bytes, _pages}} <- op(caller, {:memory_size, memory}), do: {:ok, bytes}
  end

  @doc "Reads an exported global of the calling instance."
  @spec global(t(), String.t()) :: {:ok, Wasmbeam.Types.value()} | {:error, Error.t()}
  def global(caller, name), do: op(caller, {:global_get, name})

  @doc "Sets an exported mutable global of the calling instance."
  @spec set_global(t(), String.t(), Wasmbeam.Types.value()) :: :ok | {:error, Error.t()}
  def set_global(caller, name, value) do
    with {:ok, :ok} <- op(caller, {:global_set, name, value}), do: :ok
  end

  @doc "The fuel the store has left (engines with `consume_fuel: true`)."
  @spec fuel(t()) :: {:ok, non_neg_integer()} | {:error, Error.t()}
  def fuel(caller), do: op(caller, {:fuel})

  @doc """
  Calls an export of the calling instance from inside the host call. The
  nested call may itself call host functions.
  """
  @spec call(t(), String.t(), [Wasmbeam.Types.value()]) ::
          {:ok, [Wasmbeam.Types.value()]} | {:error, Error.t()}
  def call(caller, name, args) when is_list(args), do: op(caller, {:call, name, args})

  def call(_caller, _name, args),
    do:
      {:error, Error.new(:argument, "arguments must be a list, got: #{inspect(args, limit: 5)}")}

  @doc "Like `read/4`, but returns the bytes or raises `Wasmbeam.Error`."
  @spec read!(t(), non_neg_integer(), non_neg_integer(), String.t()) :: binary()
  def read!(caller, offset, length, memory \\ "memory"),
    do: read(caller, offset, length, memory) |> Error.unwrap!()

  @doc "Like `write/4`, but raises `Wasmbeam.Error`."
  @spec write!(t(), non_neg_integer(), binary(), String.t()) :: :ok
  def write!(caller, offset, bytes, memory \\ "memory"),
    do: write(caller, offset, bytes, memory) |> Error.unwrap!()

  @doc "Like `memory_size/2`, but raises `Wasmbeam.Error`."
  @spec memory_size!(t(), String.t()) :: non_neg_integer()
  def memory_size!(caller, memory \\ "memory"),
    do: memory_size(caller, memory) |> Error.unwrap!()

  @doc "Like `global/2`, but raises `Wasmbeam.Error`."
  @spec global!(t(), String.t()) :: Wasmbeam.Types.value()
  def global!(caller, name), do: global(caller, name) |> Error.unwrap!()

  @doc "Like `set_global/3`, but raises `Wasmbeam.Error`."
  @spec set_global!(t(), String.t(), Wasmbeam.Types.value()) :: :ok
  def set_global!(caller, name, value), do: set_global(caller, name, value) |> Error.unwrap!()

  @doc "Like `fuel/1`, but raises `Wasmbeam.Error`."
  @spec fuel!(t()) :: non_neg_integer()
  def fuel!(caller), do: fuel(caller) |> Error.unwrap!()

  @doc "Like `call/3`, but returns the results or raises `Wasmbeam.Error`."
  @spec call!(t(), String.t(), [Wasmbeam.Types.value()]) :: [Wasmbeam.Types.value()]
  def call!(caller, name, args), do: call(caller, name, args) |> Error.unwrap!()

  # Copies of more than 64 KiB run on a dirty scheduler (the native side
  # refuses them on a normal one), as `Wasmbeam.Memory` does.
  @large 64 * 1024

  defp op(%__MODULE__{store: store, id: id, owner: owner}, op) do
    with :ok <- check_owner(owner), :ok <- check_name(op), do: run(store, id, op)
  end

  defp op(other, _op),
    do: {:error, Error.new(:argument, "expected a %Wasmbeam.Caller{}, got: #{inspect(other)}")}

  # Another process driving the guest from the inside would get the wakes
  # and messages meant for the process that runs the host call.
  defp check_owner(owner) when owner == self(), do: :ok

  defp check_owner(owner),
    do:
      {:error,
       Error.new(
         :argument,
         "a Wasmbeam.Caller can be used only by the process running its host function " <>
           "(#{inspect(owner)}), not by #{inspect(self())}"
       )}

  # Every operation but `{:fuel}` names an export (a memory, a global, a
  # function) first.
  defp check_name({:fuel}), do: :ok
  defp check_name(op), do: Wasmbeam.ExportName.check(elem(op, 1))

  defp run(store, id, op) do
    step =
      if large?(op),
        do: Native.caller_op_large(store, id, op),
        else: Native.caller_op(store, id, op)

    Driver.finish(step, store)
  end

  defp large?({:memory_read, _memory, _offset, length}), do: length > @large
  defp large?({:memory_write, _memory, _offset, bytes}), do: byte_size(bytes) > @large
  defp large?(_op), do: false

  defimpl Inspect do
    def inspect(caller, _opts), do: "#Wasmbeam.Caller<#{caller.id}>"
  end
end
