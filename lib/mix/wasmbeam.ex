defmodule Mix.Wasmbeam do
  @moduledoc false
  # What Wasmbeam's Mix tasks share.

  @doc false
  # Compiles the project (its dependencies, the NIF) and starts Wasmbeam
  # and the applications it needs, but not the project's own application
  # and not `config/runtime.exs`: a Phoenix app's runtime configuration
  # may need a DATABASE_URL and its supervision tree a database, neither of
  # which running or precompiling WebAssembly needs. `config/config.exs`
  # (and what it imports) is in effect, as for every Mix task.
  @spec start_wasmbeam() :: :ok
  def start_wasmbeam do
    Mix.Task.run("compile")

    case Application.ensure_all_started(:wasmbeam) do
      {:ok, _} -> :ok
      {:error, reason} -> Mix.raise("could not start Wasmbeam: #{inspect(reason)}")
    end
  end
end
