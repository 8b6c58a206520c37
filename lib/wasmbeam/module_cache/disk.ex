defmodule Wasmbeam.ModuleCache.Disk do
  @moduledoc false
  # The on-disk tiers of `Wasmbeam.ModuleCache`: the cache's own directory
  # (secret key, sealed artifacts, LRU eviction) and the read-only
  # directories of precompiled artifacts shipped with a release. The
  # sealing, verification and memory-mapped loading are native
  # (native/wasmbeam/src/cache.rs, native/wasmbeam_core/src/sealed*.rs).

  require Logger

  alias Wasmbeam.{Engine, Error, Native}

  @key_bytes 32
  @suffix ".cwasm"

  # The key precompiled artifacts are sealed with. It is public on
  # purpose: a release's artifacts are trusted because they are part of
  # the release (like its .beam files and the NIF), so for them the keyed
  # hash works as a checksum that catches damage and files made for
  # another entry.
  @precompiled_key "wasmbeam precompiled artifact v1"
  32 = byte_size(@precompiled_key)

  @doc false
  @spec precompiled_key() :: binary()
  def precompiled_key, do: @precompiled_key

  @doc false
  @spec modules_dir(Path.t()) :: Path.t()
  def modules_dir(dir), do: Path.join(dir, "modules")

  @doc false
  @spec artifact_path(Path.t(), String.t()) :: Path.t()
  def artifact_path(modules_dir, entry), do: Path.join(modules_dir, entry <> @suffix)

  @doc false
  # Creates the directory and the secret key on first use, and returns the
  # key. Several VMs may share the directory: the key is written to a
  # temporary file and hard-linked into place, which fails if another VM
  # won the race; everyone then reads the winner's key.
  @spec ensure_key(Path.t()) :: {:ok, binary()} | {:error, Error.t()}
  def ensure_key(dir) do
    key_path = Path.join(dir, "key")

    with :ok <- mkdir(modules_dir(dir)),
         :ok <- create_key(key_path) do
      read_key(key_path)
    end
  end

  defp mkdir(dir) do
    case File.mkdir_p(dir) do
      :ok ->
        # Only the owner may list or add artifacts.
        _ = File.chmod(dir, 0o700)
        :ok

      {:error, reason} ->
        io_error("cannot create #{dir}", reason)
    end
  end

  defp create_key(key_path) do
    if File.exists?(key_path) do
      :ok
    else
      tmp = "#{key_path}.#{System.pid()}-#{System.unique_integer([:positive])}.tmp"

      with {:ok, secret} <- random_bytes(@key_bytes),
           {:ok, io} <- File.open(tmp, [:write, :exclusive, :binary]),
           :ok <- File.chmod(tmp, 0o600),
           :ok <- IO.binwrite(io, secret),
           :ok <- :file.sync(io),
           :ok <- File.close(io) do
        result = File.ln(tmp, key_path)
        File.rm(tmp)

        case result do
          :ok -> :ok
          {:error, :eexist} -> :ok
          {:error, reason} -> io_error("cannot create #{key_path}", reason)
        end
      else
        {:error, reason} ->
          File.rm(tmp)
          io_error("cannot create #{key_path}", reason)
      end
    end
  end

  # The kernel's CSPRNG, read directly: `:crypto` would make OpenSSL a
  # requirement of the library for these 32 bytes.
  defp random_bytes(n) do
    with {:ok, io} <- File.open("/dev/urandom", [:read, :binary]) do
      bytes = IO.binread(io, n)
      File.close(io)

      case bytes do
        <<_::binary-size(n)>> -> {:ok, bytes}
        _ -> {:error, :eio}
      end
    end
  end

  defp read_key(key_path) do
    case File.stat(key_path) do
      {:ok, %File.Stat{type: :regular, mode: mode}} when Bitwise.band(mode, 0o077) != 0 ->
        {:error,
         Error.new(
           :argument,
           "module cache key #{key_path} is accessible to other users (mode #{Integer.to_string(Bitwise.band(mode, 0o777), 8)}); it must be 0600"
         )}

      {:ok, %File.Stat{type: :regular}} ->
        case File.read(key_path) do
          {:ok, <<_::binary-size(@key_bytes)>> = key} -> {:ok, key}
          {:ok, _} -> {:error, Error.new(:argument, "module cache key #{key_path} is damaged")}
          {:error, reason} -> io_error("cannot read #{key_path}", reason)
        end

      {:ok, _} ->
        {:error, Error.new(:argument, "module cache key #{key_path} is not a regular file")}

      {:error, reason} ->
        io_error("cannot read #{key_path}", reason)
    end
  end

  defp io_error(what, reason),
    do: {:error, Error.new(:argument, "module cache: #{what}: #{:file.format_error(reason)}")}

  @doc false
  # Loads a sealed artifact. A refused file is reported and, when
  # `remove?`, removed; either way the caller goes on as on a miss.
  #
  # What is at `path` is looked at first (`File.lstat/1`, which does not
  # follow links): the native load opens the path, and opening a FIFO
  # blocks until a writer comes (for ever, in a cache directory), a device
  # may do anything, and a directory can be neither loaded nor written over.
  # Anything but a regular file is refused without being opened.
  @spec load(Engine.t(), binary(), String.t(), Path.t(), boolean()) ::
          {:ok, reference()} | {:ok, reference(), :component} | :miss | {:refused, String.t()}
  def load(%Engine{} = engine, key, entry, path, remove?) do
    case File.lstat(path) do
      {:ok, %File.Stat{type: :regular}} ->
        load_regular(engine, key, entry, path, remove?)

      {:ok, %File.Stat{type: type}} ->
        refuse(path, "a #{describe(type)}, not a regular file", remove?)

      {:error, :enoent} ->
        :miss

      {:error, reason} ->
        Logger.warning(
          "Wasmbeam.ModuleCache could not read #{path}: #{:file.format_error(reason)}"
        )

        :miss
    end
  end

  defp load_regular(%Engine{ref: engine}, key, entry, path, remove?) do
    case Native.module_cache_load(engine, key, entry, path) do
      {:ok, ref} ->
        {:ok, ref}

      {:ok, ref, :component} ->
        {:ok, ref, :component}

      :missing ->
        :miss

      {:refused, why} ->
        refuse(path, why, remove?)

      {:error, %Error{} = error} ->
        Logger.warning("Wasmbeam.ModuleCache could not read #{path}: #{error.message}")
        :miss
    end
  end

  defp refuse(path, why, remove?) do
    action = if remove?, do: "removed it; recompiling", else: "ignoring it"
    Logger.warning("Wasmbeam.ModuleCache refused #{path}: #{why}; #{action}")
    if remove?, do: remove(path)
    {:refused, why}
  end

  # A directory goes with what it holds (the cache's directory is its
  # own); anything else is unlinked, never opened.
  defp remove(path) do
    case File.lstat(path) do
      {:ok, %File.Stat{type: :directory}} -> File.rm_rf(path)
      _ -> File.rm(path)
    end
  end

  defp describe(:directory), do: "directory"
  defp describe(:symlink), do: "symbolic link"
  defp describe(:device), do: "device"
  defp describe(_other), do: "special file (FIFO, socket or device)"

  @doc false
  @spec write(Wasmbeam.Module.t() | Wasmbeam.Component.t(), binary(), String.t(), Path.t()) ::
          {:ok, non_neg_integer()} | {:error, Error.t()}
  def write(%Wasmbeam.Module{ref: ref}, key, entry, path),
    do: Native.module_cache_write(ref, key, entry, path)

  def write(%Wasmbeam.Component{ref: ref}, key, entry, path),
    do: Native.module_cache_write(ref, key, entry, path)

  @doc false
  # The artifacts in a directory, oldest use first: `{path, bytes, mtime}`.
  @spec artifacts(Path.t()) :: [{Path.t(), non_neg_integer(), integer()}]
  def artifacts(modules_dir) do
    case File.ls(modules_dir) do
      {:ok, names} ->
        for name <- names,
            String.ends_with?(name, @suffix),
            path = Path.join(modules_dir, name),
            {:ok, %File.Stat{type: :regular, size: size, mtime: mtime}} <-
              [File.stat(path, time: :posix)] do
          {path, size, mtime}
        end
        |> Enum.sort_by(&elem(&1, 2))

      {:error, _} ->
        []
    end
  end

  @doc false
  # Removes the least recently used artifacts until the directory holds at
  # most `max_bytes`; returns how many it removed.
  @spec evict(Path.t(), non_neg_integer()) :: non_neg_integer()
  def evict(modules_dir, max_bytes) do
    artifacts = artifacts(modules_dir)
    total = artifacts |> Enum.map(&elem(&1, 1)) |> Enum.sum()

    {_, removed} =
      Enum.reduce_while(artifacts, {total, 0}, fn {path, size, _}, {total, removed} ->
        if total <= max_bytes do
          {:halt, {total, removed}}
        else
          File.rm(path)
          {:cont, {total - size, removed + 1}}
        end
      end)

    removed
  end

  @doc false
  # Marks an artifact as just used, for LRU eviction (access times are
  # often not kept: `noatime`, `relatime`).
  @spec touch(Path.t()) :: :ok
  def touch(path) do
    _ = File.touch(path)
    :ok
  end
end
