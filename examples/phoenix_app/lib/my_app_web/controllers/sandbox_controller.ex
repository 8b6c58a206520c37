defmodule MyAppWeb.SandboxController do
  @moduledoc """
  The untrusted plugin (`priv/plugins/untrusted.wat`), one fresh instance
  per request from `MyApp.Sandbox` (policy `:fresh`: nothing a request
  leaves in memory or globals reaches the next), under the budget of
  `MyApp.PluginConfig.sandbox_budget/0` (fuel, deadline) and the pool's
  instance options (1 MiB of memory, 4 KiB of stdout).
  """

  use Phoenix.Controller, formats: [:json]

  alias MyAppWeb.WasmResult

  def run(conn, %{"export" => export} = params) do
    case MyApp.Sandbox.run(export, Map.get(params, "n", "0")) do
      {:ok, result, stdout} ->
        json(conn, %{result: result, stdout: stdout})

      {:error, %Wasmbeam.Error{} = error} ->
        conn |> put_status(WasmResult.status(error)) |> json(WasmResult.body(error))
    end
  end
end
