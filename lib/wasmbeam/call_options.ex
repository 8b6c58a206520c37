defmodule Wasmbeam.CallOptions do
  @moduledoc """
  Options accepted by every function that runs guest code
  (`Wasmbeam.Instance.call/4`, `Wasmbeam.Func.call/3`, `Wasmbeam.Instance.new/3`):

    * `:timeout` - milliseconds of wall-clock time the call may run (at
      most 2^32-1, about 49 days, as for any Erlang timer), or
      `:infinity` (the default; see below why). A call past its deadline
      stops with a `:timeout` error and the store stays usable.
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

  ## The default timeout is `:infinity`

  Wasmex's calls time out after 5 s by default (`GenServer.call/3`'s
  default). Wasmbeam's do not, on purpose:

    * A call on a bare instance runs in the calling process, like any other
      function call: no other process waits for it, the caller can always
      be stopped (and its death cancels the call), and a guest that never
      ends costs only that process: it runs in slices of about 100 µs at
      low priority and never holds a scheduler or another guest's thread.
    * No single bound fits: a compute kernel should get microseconds to
      milliseconds, a request the time its deadline leaves, a WASI program
      or a job minutes. A fixed 5 s would be too long for the first and
      would fail the last far from where anyone chose a limit.
    * A deadline costs about 100 ns per call (`bench/call.exs`: 777 ns
      median without, 875 ns with `timeout: 1000`), an eighth of the
      cheapest call, which every caller without one would pay.

  So pass `timeout:` wherever time matters: a request's remaining
  deadline, a job's budget (`Wasmbeam.Job.run/4`), untrusted code. Where a
  process waits for another, the limits are finite by default: a pool
  checkout waits at most its `:checkout_timeout` (5 s), a
  `{:process, server}` host handler answers within 5 s, and a call to an
  instance process is awaited as long as its own `timeout:` allows.
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
