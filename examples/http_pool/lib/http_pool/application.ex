defmodule HttpPool.Application do
  @moduledoc """
  The supervision tree: a pool of instances of `priv/plugin.wat`, a task
  supervisor for connections, and the listener. The pool starts first, so
  the listener never accepts a request it cannot serve.

  Environment: `HTTP_POOL_PORT` (default 4040; 0 picks a free port),
  `HTTP_POOL_EXIT_ON_EOF=1` stops the VM when standard input closes (the
  test that drives this app uses it so that the app never outlives it).
  """

  use Application

  @impl true
  def start(_type, _args) do
    module =
      Wasmbeam.Module.compile!(File.read!(Application.app_dir(:http_pool, "priv/plugin.wat")))

    port = String.to_integer(System.get_env("HTTP_POOL_PORT", "4040"))

    children = [
      {Wasmbeam.Pool,
       name: HttpPool.Pool, module: module, size: 4, max_overflow: 4, max_waiting: 200},
      {Task.Supervisor, name: HttpPool.Connections},
      {HttpPool.Listener, port: port}
    ]

    if System.get_env("HTTP_POOL_EXIT_ON_EOF") == "1", do: watch_stdin()

    Supervisor.start_link(children, strategy: :rest_for_one, name: HttpPool.Supervisor)
  end

  defp watch_stdin do
    spawn(fn ->
      IO.read(:stdio, :line)
      System.stop()
    end)
  end
end
