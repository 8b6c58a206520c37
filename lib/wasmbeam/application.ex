defmodule Wasmbeam.Application do
  @moduledoc false
  use Application

  @impl true
  def start(_type, _args) do
    case Wasmbeam.Native.load() do
      :ok ->
        Supervisor.start_link([Wasmbeam.ModuleCache],
          strategy: :one_for_one,
          name: Wasmbeam.Supervisor
        )

      {:error, reason} ->
        {:error,
         {:nif_not_loaded,
          "could not load Wasmbeam's NIF from priv/native (#{inspect(reason)}); " <>
            "run `mix compile` to build it"}}
    end
  end
end
