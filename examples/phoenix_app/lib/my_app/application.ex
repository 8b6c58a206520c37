defmodule MyApp.Application do
  @moduledoc """
  The supervision tree: the Repo, three pools of WebAssembly instances
  (trusted kernels for requests, an untrusted plugin in a fresh sandbox
  per request, trusted kernels for jobs), Oban, then the endpoint. The
  pools start before Oban and the endpoint, so no request or job arrives
  before there is an instance to serve it.

  The `start/2` below is the one README.md shows ("In a Phoenix
  application"); `test/readme_test.exs` checks that the README still
  quotes it.
  """

  use Application

  # README: application
  @impl true
  def start(_type, _args) do
    # Trusted kernels the app ships: warm instances, reused between requests.
    kernels = Wasmbeam.Module.compile!(File.read!(MyApp.PluginConfig.path("kernels.wat")))

    # Untrusted code: compiled on an engine that counts fuel, and run in a
    # fresh instance per request, with a memory limit and captured stdout.
    {:ok, metered} = Wasmbeam.Engine.new(consume_fuel: true)

    untrusted =
      Wasmbeam.Module.compile!(metered, File.read!(MyApp.PluginConfig.path("untrusted.wat")))

    children = [
      MyApp.Repo,
      {Wasmbeam.Pool,
       name: MyApp.Plugins,
       module: kernels,
       size: 4,
       max_overflow: 4,
       max_waiting: 16,
       checkout_timeout: 1_000,
       policy: :reuse},
      {Wasmbeam.Pool,
       name: MyApp.Sandbox,
       module: untrusted,
       size: 2,
       max_overflow: 2,
       max_waiting: 8,
       checkout_timeout: 1_000,
       policy: :fresh,
       instance_options: [memory_size: 1_048_576, wasi: [stdout: {:capture, 4_096}]]},
      # Jobs get instances of their own, so a burst of jobs never takes the
      # requests' ones. No waiting room: a job that finds every instance
      # busy is snoozed back into Oban's queue (Wasmbeam.Job's :snooze).
      {Wasmbeam.Pool,
       name: MyApp.JobPlugins, module: kernels, size: 2, max_overflow: 0, max_waiting: 0},
      {Oban, Application.fetch_env!(:my_app, Oban)},
      MyAppWeb.Endpoint
    ]

    Supervisor.start_link(children, strategy: :one_for_one, name: MyApp.Supervisor)
  end

  # README: end
end
