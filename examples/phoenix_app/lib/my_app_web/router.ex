defmodule MyAppWeb.Router do
  use Phoenix.Router

  pipeline :api do
    plug :accepts, ["json"]
  end

  scope "/", MyAppWeb do
    get "/", PageController, :index
  end

  scope "/api", MyAppWeb do
    pipe_through :api

    get "/ping", PluginController, :ping
    get "/fib/:n", PluginController, :fib
    get "/div/:a/:b", PluginController, :div
    get "/spin", PluginController, :spin
    get "/sandbox/:export", SandboxController, :run
    get "/stats", StatsController, :show
  end
end
