defmodule MyAppWeb.StatsController do
  @moduledoc "The pools' figures (`Wasmbeam.Pool.stats/1`) as JSON."

  use Phoenix.Controller, formats: [:json]

  def show(conn, _params) do
    json(conn, %{
      plugins: Wasmbeam.Pool.stats!(MyApp.Plugins),
      sandbox: Wasmbeam.Pool.stats!(MyApp.Sandbox)
    })
  end
end
