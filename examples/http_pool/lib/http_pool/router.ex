defmodule HttpPool.Router do
  @moduledoc """
  Maps a request to a pool call and the call's outcome to an HTTP status:
  the request-per-call pattern. Each request runs in its own process, checks
  an instance out of the pool, calls it with the request's deadline, and
  checks it back in; the pool process is not in the call path.

      GET /fib/:n   the n-th Fibonacci number (100 ms deadline)
      GET /spin     a runaway guest: stopped at its 50 ms deadline (504)
      GET /stats    the pool's figures
  """

  alias Wasmbeam.{Error, Pool}

  @spec handle(atom(), binary()) :: {pos_integer(), binary()}
  def handle(:GET, "/fib/" <> n) do
    case Integer.parse(n) do
      {n, ""} when n >= 0 -> reply(Pool.call(HttpPool.Pool, "fib", [n], timeout: 100))
      _ -> {400, "n must be a non-negative integer\n"}
    end
  end

  def handle(:GET, "/spin"), do: reply(Pool.call(HttpPool.Pool, "spin", [], timeout: 50))

  def handle(:GET, "/stats") do
    {:ok, stats} = Pool.stats(HttpPool.Pool)
    {200, Enum.map_join(Enum.sort(stats), "", fn {key, value} -> "#{key} #{value}\n" end)}
  end

  def handle(_method, _path), do: {404, "not found\n"}

  defp reply({:ok, [value]}), do: {200, "#{value}\n"}
  defp reply({:error, %Error{kind: :timeout} = e}), do: {504, Exception.message(e) <> "\n"}
  defp reply({:error, %Error{kind: :overloaded} = e}), do: {503, Exception.message(e) <> "\n"}
  defp reply({:error, %Error{kind: :trap} = e}), do: {422, Exception.message(e) <> "\n"}
  defp reply({:error, %Error{} = e}), do: {500, Exception.message(e) <> "\n"}
end
