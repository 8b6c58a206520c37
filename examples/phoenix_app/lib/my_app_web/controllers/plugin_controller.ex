defmodule MyAppWeb.PluginController do
  @moduledoc """
  The trusted plugin (`priv/plugins/kernels.wat`) from the pool of warm
  instances `MyApp.Plugins`: one request, one checkout, one call with the
  request's deadline. `fib/2` is the action README.md shows.
  """

  use Phoenix.Controller, formats: [:json]

  alias MyAppWeb.WasmResult

  # The constant route: what Phoenix costs without Wasmbeam (bench/).
  def ping(conn, _params), do: text(conn, "pong")

  # README: controller
  def fib(conn, %{"n" => n}) do
    with {n, ""} when n >= 0 <- Integer.parse(n),
         {:ok, [value]} <- Wasmbeam.Pool.call(MyApp.Plugins, "fib", [n], timeout: 100) do
      json(conn, %{result: value})
    else
      {:error, %Wasmbeam.Error{} = error} ->
        conn |> put_status(WasmResult.status(error)) |> json(WasmResult.body(error))

      _not_a_number ->
        conn |> put_status(400) |> json(%{error: "n must be a non-negative integer"})
    end
  end

  # README: end

  def div(conn, %{"a" => a, "b" => b}) do
    with {a, ""} <- Integer.parse(a), {b, ""} <- Integer.parse(b) do
      reply(conn, Wasmbeam.Pool.call(MyApp.Plugins, "div", [a, b], timeout: 100))
    else
      _ -> conn |> put_status(400) |> json(%{error: "a and b must be integers"})
    end
  end

  # A guest that never returns, stopped by the deadline `timeout` (ms,
  # default 50, at most 60 s) or by the death of the request's process.
  def spin(conn, params) do
    case Integer.parse(Map.get(params, "timeout", "50")) do
      {timeout, ""} when timeout in 1..60_000 ->
        reply(conn, Wasmbeam.Pool.call(MyApp.Plugins, "spin", [], timeout: timeout))

      _ ->
        conn |> put_status(400) |> json(%{error: "timeout must be 1..60000 (ms)"})
    end
  end

  defp reply(conn, {:ok, [value]}), do: json(conn, %{result: value})
  defp reply(conn, {:ok, []}), do: json(conn, %{result: nil})

  defp reply(conn, {:error, error}),
    do: conn |> put_status(WasmResult.status(error)) |> json(WasmResult.body(error))
end
