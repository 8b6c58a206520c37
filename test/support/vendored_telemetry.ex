defmodule Wasmbeam.Test.VendoredTelemetry do
  @moduledoc false
  # The real :telemetry (1.4.1), for the tests and bench/telemetry.exs:
  # Wasmbeam does not depend on it, and hex.pm is out of reach, so its
  # Erlang sources are taken from the vendored Phoenix/Oban tarball
  # (../shared/vendor/phoenix-oban-deps.tar.gz), compiled once into the
  # ignored .cache/telemetry-1.4.1/ebin, and loaded from there. Plain
  # Erlang: it compiles the same under every Elixir on this OTP.

  @root Path.expand("../..", __DIR__)
  @tarball Path.expand("../shared/vendor/phoenix-oban-deps.tar.gz", @root)
  @dir Path.join(@root, ".cache/telemetry-1.4.1")
  @ebin Path.join(@dir, "ebin")
  @modules ~w(telemetry telemetry_app telemetry_ets telemetry_handler_table telemetry_pt telemetry_sup telemetry_test)a

  @doc false
  # Loads and starts :telemetry, then tells Wasmbeam (which looked when it
  # started). Returns :ok or {:error, why}.
  @spec load() :: :ok | {:error, String.t()}
  def load do
    with :ok <- build() do
      :code.add_patha(String.to_charlist(@ebin))

      case Application.ensure_all_started(:telemetry) do
        {:ok, _} ->
          Wasmbeam.Telemetry.refresh()
          :ok

        {:error, reason} ->
          {:error, "cannot start :telemetry: #{inspect(reason)}"}
      end
    end
  end

  @doc false
  # Stops and unloads :telemetry and takes it off the code path, so that
  # Wasmbeam finds it absent (bench/telemetry.exs's first rows).
  @spec unload() :: :ok
  def unload do
    _ = Application.stop(:telemetry)
    _ = Application.unload(:telemetry)

    for module <- @modules do
      :code.purge(module)
      :code.delete(module)
      :code.purge(module)
    end

    :code.del_path(String.to_charlist(@ebin))
    Wasmbeam.Telemetry.refresh()
    :ok
  end

  defp build do
    if File.exists?(Path.join(@ebin, "telemetry.app")), do: :ok, else: extract_and_compile()
  end

  defp extract_and_compile do
    if File.exists?(@tarball) do
      File.rm_rf!(@dir)
      File.mkdir_p!(@ebin)

      case System.cmd("tar", ["xzf", @tarball, "-C", @dir, "deps/telemetry"],
             stderr_to_stdout: true
           ) do
        {_, 0} -> compile()
        {output, status} -> {:error, "tar exited with #{status}: #{output}"}
      end
    else
      {:error, "#{@tarball} is not there"}
    end
  end

  defp compile do
    src = Path.join(@dir, "deps/telemetry/src")

    results =
      for file <- Path.wildcard(Path.join(src, "*.erl")) do
        :compile.file(String.to_charlist(file), [
          :return_errors,
          {:outdir, String.to_charlist(@ebin)},
          {:i, String.to_charlist(src)}
        ])
      end

    case Enum.reject(results, &match?({:ok, _}, &1)) do
      [] -> write_app(src, Enum.map(results, &elem(&1, 1)))
      errors -> {:error, "cannot compile :telemetry: #{inspect(errors)}"}
    end
  end

  # The .app file, as rebar3 makes it from the .app.src: with its modules.
  defp write_app(src, modules) do
    {:ok, [{:application, :telemetry, properties}]} =
      :file.consult(String.to_charlist(Path.join(src, "telemetry.app.src")))

    app = {:application, :telemetry, Keyword.put(properties, :modules, modules)}
    File.write!(Path.join(@ebin, "telemetry.app"), :io_lib.format(~c"~p.~n", [app]))
  end
end
