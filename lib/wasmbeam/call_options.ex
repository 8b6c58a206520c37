defmodule Wasmbeam.CallOptions do
  @moduledoc """
  Options accepted by every function that runs guest code
  (`Wasmbeam.Instance.call/4`, `Wasmbeam.Func.call/3`, `Wasmbeam.Instance.new/3`):

    * `:timeout` - milliseconds of wall-clock time the call may run (at
      most 2^32-1, about 49 days, as for any Erlang timer), or
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
      A process whose wait ended with `:busy` leaves the store's queue and
      no message behind in its mailbox.
  """

  @type t :: [timeout: timeout(), fuel: non_neg_integer(), wait: boolean()]

  require Wasmbeam.Timeout

  @max_u64 0xFFFF_FFFF_FFFF_FFFF

  @doc false
  @spec to_native(keyword()) :: {:ok, map()} | {:error, Wasmbeam.Error.t()}
  # The common case, without building anything.
  def to_native([]), do: {:ok, %{timeout: nil, fuel: nil, wait: true}}

  # Plain recursion rather than `Enum.reduce_while/3`: the Enumerable
  # protocol costs more than the rest of a short call's option handling.
  def to_native(options) when is_list(options),
    do: parse(options, %{timeout: nil, fuel: nil, wait: true})

  def to_native(other),
    do:
      {:error,
       Wasmbeam.Error.new(
         :argument,
         "call options must be a keyword list, got: #{inspect(other)}"
       )}

  @doc false
  # Whether `term` is what `to_native/1` makes: checked by an instance
  # process on every request it receives, since any process can send one.
  @spec native?(term()) :: boolean()
  def native?(%{timeout: timeout, fuel: fuel, wait: wait} = native)
      when map_size(native) == 3 and is_boolean(wait) do
    (timeout == nil or Wasmbeam.Timeout.is_ms(timeout)) and
      (fuel == nil or (is_integer(fuel) and fuel >= 0 and fuel <= @max_u64))
  end

  def native?(_other), do: false

  defp parse([], acc), do: {:ok, acc}

  defp parse([{:wait, wait} | rest], acc) when is_boolean(wait),
    do: parse(rest, %{acc | wait: wait})

  defp parse([{:timeout, :infinity} | rest], acc), do: parse(rest, %{acc | timeout: nil})

  defp parse([{:timeout, ms} | rest], acc) when Wasmbeam.Timeout.is_ms(ms),
    do: parse(rest, %{acc | timeout: ms})

  defp parse([{:timeout, other} | _], _acc) do
    {:error, error} = Wasmbeam.Timeout.check(other, ":timeout")

    {:error,
     %{error | message: "invalid call option: #{inspect({:timeout, other})}; #{error.message}"}}
  end

  defp parse([{:fuel, n} | rest], acc) when is_integer(n) and n >= 0 and n <= @max_u64,
    do: parse(rest, %{acc | fuel: n})

  defp parse([other | _], _acc),
    do: {:error, Wasmbeam.Error.new(:argument, "invalid call option: #{inspect(other)}")}

  defp parse(improper, _acc),
    do:
      {:error,
       Wasmbeam.Error.new(
         :argument,
         "call options must be a keyword list, got an improper tail: #{inspect(improper)}"
       )}
end
