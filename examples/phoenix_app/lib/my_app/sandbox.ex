defmodule MyApp.Sandbox do
  @moduledoc """
  Runs one export of the untrusted plugin in a fresh instance of the
  `MyApp.Sandbox` pool, with the budget of `MyApp.PluginConfig.sandbox_budget/0`,
  and returns its result with what it wrote to stdout. Used by the
  sandbox route and the HTML page.
  """

  @spec run(String.t(), String.t() | integer()) ::
          {:ok, integer(), String.t()} | {:error, Wasmbeam.Error.t()}
  def run(export, n) when is_binary(n) do
    case Integer.parse(n) do
      {n, ""} -> run(export, n)
      _ -> {:error, Wasmbeam.Error.new(:argument, "n must be an integer, got: #{inspect(n)}")}
    end
  end

  def run(export, n) when is_binary(export) and is_integer(n) do
    budget = MyApp.PluginConfig.sandbox_budget()

    Wasmbeam.Pool.checkout(MyApp.Sandbox, fn instance ->
      with {:ok, [result]} <- Wasmbeam.Instance.call(instance, export, [n], budget),
           {:ok, %{stdout: stdout}} <- Wasmbeam.Wasi.output(instance) do
        {:ok, result, stdout}
      end
    end)
  end
end
