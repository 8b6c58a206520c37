defmodule Wasmbeam.ModuleCache.Manifest do
  @moduledoc false
  # What a directory of precompiled artifacts was made from, so that a
  # miss can say why. An artifact's file name is one hash over the module
  # and everything the engine's code depends on (settings, Wasmtime
  # version, target, CPU features), so from names alone a miss for a CPU
  # with other features looks like a module that was never precompiled.
  # `ModuleCache.precompile/3` adds a line per artifact to `manifest` in
  # the directory: the entry, an MD5 of the module's bytes (erts's own
  # `:erlang.md5/1`: an identity, not a seal), the engine's compatibility
  # hash, a fingerprint of its settings, the Wasmbeam version and the
  # system architecture. On a miss, `mismatch/3` looks for the same
  # module made for another engine and says what differs.

  alias Wasmbeam.Engine

  @file_name "manifest"
  @fields [:entry, :module, :compatibility, :settings, :wasmbeam, :system, :source]

  @doc false
  @spec file(Path.t()) :: Path.t()
  def file(dir), do: Path.join(dir, @file_name)

  @doc false
  # Records that `dir` holds the artifact `entry` of `bytes` for `engine`.
  # Lines of artifacts no longer in the directory are dropped.
  @spec add(Path.t(), Engine.t(), binary(), String.t(), String.t()) :: :ok
  def add(dir, %Engine{} = engine, bytes, entry, source \\ "") do
    line = record(engine, bytes, entry, source)

    kept =
      for record <- read(dir),
          record.entry != entry,
          File.regular?(Path.join(dir, record.entry <> ".cwasm")),
          do: record

    text = Enum.map_join(kept ++ [line], &format/1)
    path = file(dir)
    tmp = "#{path}.#{System.pid()}-#{System.unique_integer([:positive])}.tmp"

    # Advisory: an unwritable manifest costs the diagnosis, not the artifact.
    with :ok <- File.write(tmp, text), do: File.rename(tmp, path)
    File.rm(tmp)
    :ok
  end

  defp record(engine, bytes, entry, source) do
    %{
      entry: entry,
      module: module_id(bytes),
      compatibility: Integer.to_string(Engine.compatibility_hash(engine)),
      settings: settings(engine),
      wasmbeam: wasmbeam_version(),
      system: to_string(:erlang.system_info(:system_architecture)),
      source: String.replace(source, ~r/[\t\n]/, " ")
    }
  end

  defp module_id(bytes), do: bytes |> :erlang.md5() |> Base.encode16(case: :lower)

  # Engine settings that decide compiled code, without the ones that do
  # not (the ticker's priority).
  defp settings(%Engine{config: config}) do
    config
    |> Map.from_struct()
    |> Map.delete(:ticker_realtime)
    |> :erlang.phash2()
    |> Integer.to_string()
  end

  defp wasmbeam_version, do: to_string(Application.spec(:wasmbeam, :vsn) || "")

  defp format(record), do: Enum.map_join(@fields, "\t", &Map.fetch!(record, &1)) <> "\n"

  defp read(dir) do
    case File.read(file(dir)) do
      {:ok, text} ->
        for line <- String.split(text, "\n", trim: true),
            values = String.split(line, "\t"),
            length(values) == length(@fields),
            do: Map.new(Enum.zip(@fields, values))

      {:error, _} ->
        []
    end
  end

  @doc false
  # Why `dir` has no artifact of `bytes` for `engine` although it has one
  # for another engine: `{:cpu, source}` when everything the manifest
  # knows is equal but the compatibility hash (so the machine that
  # precompiled it had other CPU features), `{:settings, source}` for
  # other engine settings, `{:build, source}` for another Wasmbeam version
  # or machine type; nil when the directory has no artifact of it.
  @spec mismatch(Path.t(), Engine.t(), binary()) ::
          nil | {:cpu | :settings | :build, String.t()}
  def mismatch(dir, %Engine{} = engine, bytes) do
    case read(dir) do
      [] ->
        nil

      records ->
        here = record(engine, bytes, "", "")

        records
        |> Enum.filter(&(&1.module == here.module and &1.compatibility != here.compatibility))
        |> Enum.filter(&File.regular?(Path.join(dir, &1.entry <> ".cwasm")))
        |> Enum.map(fn record -> {reason(record, here), record.source} end)
        |> Enum.min_by(fn {reason, _} -> rank(reason) end, fn -> nil end)
    end
  end

  defp reason(record, here) do
    cond do
      record.wasmbeam != here.wasmbeam or record.system != here.system -> :build
      record.settings != here.settings -> :settings
      true -> :cpu
    end
  end

  defp rank(:cpu), do: 0
  defp rank(:settings), do: 1
  defp rank(:build), do: 2
end
