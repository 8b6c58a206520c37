defmodule MyApp.PluginConfig do
  @moduledoc """
  Where the plugins live and the budgets untrusted code runs under.

  The WAT sources are in `priv/plugins/` and compiled when the application
  starts (a few milliseconds each); a real app would ship `.wasm` files or
  precompiled modules (`mix wasmbeam.precompile`).
  """

  @doc "The path of a plugin source in the app's `priv/plugins`."
  @spec path(String.t()) :: Path.t()
  def path(file), do: Application.app_dir(:my_app, Path.join("priv/plugins", file))

  @doc """
  The budget of one sandboxed call: `:fuel` (instructions, roughly),
  `:timeout` (ms). Read from `config :my_app, :sandbox` at each request,
  so it can be tuned at run time.
  """
  @spec sandbox_budget() :: [fuel: pos_integer(), timeout: pos_integer()]
  def sandbox_budget do
    defaults = [fuel: 5_000_000, timeout: 200]
    Keyword.merge(defaults, Application.get_env(:my_app, :sandbox, []))
  end

  @doc "The exports of the untrusted plugin that the sandbox lets requests call."
  @spec sandbox_exports() :: [String.t()]
  def sandbox_exports, do: ~w(squares loop crash hog flood)
end
