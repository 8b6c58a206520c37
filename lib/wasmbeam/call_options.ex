defmodule Wasmbeam.CallOptions do
  @moduledoc """
  Options accepted by every function that runs guest code
  (`Wasmbeam.Instance.call/4`, `Wasmbeam.Func.call/3`, `Wasmbeam.Instance.new/3`):

    * `:timeout` - milliseconds of wall-clock time the call may run, or
      `:infinity` (the default). A call past its deadline stops with a
      `:timeout` error and the store stays usable.
    * `:fuel` - fuel to give the store for this call (engines created with
      `consume_fuel: true` only). Without it, the call uses what the store
      has left.
    * `:wait` - when another call is running on the same store, wait for it
      to end (the default, `true`; at most `:timeout` ms) or fail at once
      with a `:busy` error (`false`). Calls to one store are serialized;
      waiting processes are woken when the store is free, with no polling.
      A host function must not call its own instance directly (it would
      wait for itself: it gets `:busy`); it uses `Wasmbeam.Caller.call/3`.
  """

  @type t :: [timeout: timeout(), fuel: non_neg_integer(), wait: boolean()]

  @max_u64 0xFFFF_FFFF_FFFF_FFFF

  @doc false
  @spec to_native(keyword()) :: {:ok, map()} | {:error, Wasmbeam.Error.t()}
  # The common case, without building anything.
  def to_native([]), do: {:ok, %{timeout: nil, fuel: nil, wait: true}}

  def to_native(options) when is_list(options) do
    Enum.reduce_while(options, {:ok, %{timeout: nil, fuel: nil, wait: true}}, fn
      {:wait, wait}, {:ok, acc} when is_boolean(wait) ->
        {:cont, {:ok, %{acc | wait: wait}}}

      {:timeout, :infinity}, {:ok, acc} ->
        {:cont, {:ok, acc}}

      {:timeout, ms}, {:ok, acc} when is_integer(ms) and ms >= 0 and ms <= @max_u64 ->
        {:cont, {:ok, %{acc | timeout: ms}}}

      {:fuel, n}, {:ok, acc} when is_integer(n) and n >= 0 and n <= @max_u64 ->
        {:cont, {:ok, %{acc | fuel: n}}}

      other, _ ->
        {:halt, {:error, Wasmbeam.Error.new(:argument, "invalid call option: #{inspect(other)}")}}
    end)
  end

  def to_native(other),
    do:
      {:error,
       Wasmbeam.Error.new(
         :argument,
         "call options must be a keyword list, got: #{inspect(other)}"
       )}
end
