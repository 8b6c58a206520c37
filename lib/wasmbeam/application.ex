defmodule Wasmbeam.Application do
  @moduledoc false
  use Application

  @impl true
  def start(_type, _args) do
    case Wasmbeam.Native.load() do
      :ok ->
        # Whether :telemetry is loaded, looked up once (see Wasmbeam.Telemetry).
        Wasmbeam.Telemetry.refresh()

        children = [
          {Registry, keys: :unique, name: Wasmbeam.InstanceRegistry},
          {Wasmbeam.InstanceSupervisor, name: Wasmbeam.InstanceSupervisor},
          Wasmbeam.ModuleCache
        ]

        # rest_for_one: instances registered in the registry go with it. The
        # module cache comes last, so that its restart touches no instance.
        Supervisor.start_link(children, strategy: :rest_for_one, name: Wasmbeam.Supervisor)

      {:error, reason} ->
        {:error,
         {:nif_not_loaded,
          "could not load Wasmbeam's NIF from priv/native (#{inspect(reason)}); " <>
            "run `mix compile` to build it"}}
    end
  end
end
