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

  @doc false
  # Runs `fun` with `Wasmbeam.Module`'s debug lines about compiles off: the
  # tasks say themselves what they compile, and the logger writes to
  # standard output, which in `mix wasmbeam.run` is the program's. The
  # level is put back afterwards (the tasks also run inside other VMs:
  # tests, a shell).
  @spec without_compile_logs((() -> result)) :: result when result: term()
  def without_compile_logs(fun) do
    previous = Logger.get_module_level(Wasmbeam.Module)
    Logger.put_module_level(Wasmbeam.Module, :info)

    try do
      fun.()
    after
      case previous do
        [{Wasmbeam.Module, level}] -> Logger.put_module_level(Wasmbeam.Module, level)
        [] -> Logger.delete_module_level(Wasmbeam.Module)
      end
    end
  end

  @doc false
  # A size for people: KiB below a MiB, MiB with one decimal above.
  @spec format_size(non_neg_integer()) :: String.t()
  def format_size(bytes) when bytes < 1024 * 1024, do: "#{div(bytes + 1023, 1024)} KiB"

  def format_size(bytes),
    do: "#{:erlang.float_to_binary(bytes / (1024 * 1024), decimals: 1)} MiB"

  @doc false
  # A duration for people: milliseconds below a second, seconds with one
  # decimal above.
  @spec format_ms(non_neg_integer()) :: String.t()
  def format_ms(ms) when ms < 1000, do: "#{ms} ms"
  def format_ms(ms), do: "#{:erlang.float_to_binary(ms / 1000, decimals: 1)} s"
end
