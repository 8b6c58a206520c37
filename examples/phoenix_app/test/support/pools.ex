defmodule MyApp.Test.Pools do
  @moduledoc false
  import ExUnit.Assertions

  @doc """
  Asserts that every instance `pool` can hold is free and answers: checks
  out its whole capacity (size + overflow) at once, nested, and calls
  `export` on each with a 1 s timeout. A checkout finds no idle instance
  while an instance is still held (say by a process whose death the pool
  has not handled yet), and then waits in the pool's queue (a message,
  not a poll) until it comes back; a call on a store that is still
  running another guest waits in the store's queue (woken by a message)
  until that guest stops, and answers `:busy` if it has not within 1 s.

  Not `wait: false`: when a holder dies mid-call, the pool may hand its
  instance on a moment before the store has finished cancelling the dead
  holder's call (two monitors of one death, handled by different
  parties), and a `wait: false` call in that moment answers `:busy`.
  """
  def assert_all_free(pool, export, args, expected) do
    %{size: size, max_overflow: overflow} = Wasmbeam.Pool.stats!(pool)
    results = checkout_all(pool, size + overflow, export, args, [])
    assert results == List.duplicate({:ok, expected}, size + overflow)
  end

  defp checkout_all(_pool, 0, _export, _args, acc), do: acc

  defp checkout_all(pool, n, export, args, acc) do
    Wasmbeam.Pool.checkout(
      pool,
      fn instance ->
        result = Wasmbeam.Instance.call(instance, export, args, timeout: 1_000)
        checkout_all(pool, n - 1, export, args, [result | acc])
      end,
      checkout_timeout: 10_000
    )
  end
end
