defmodule Wasmbeam.ModuleCache do
  @moduledoc """
  A cache of compiled modules, so that a module is compiled once — not
  once per call site, process, or VM restart.

  Compiling a large module takes seconds (CPython for WASI, 20 MB: 5.3-5.9 s
  with Cranelift on the 2-core development machine, measured 2026-12-03 at
  load average 1-2; more under load, see the README's "Cold start");
  loading it from this cache takes milliseconds. `compile/3`
  looks in three places, in order:

    1. **memory**: a module compiled from the same bytes by the same engine
       in this VM is returned as it is;
    2. **disk**: the read-only directories of precompiled artifacts shipped
       with a release (see `mix wasmbeam.precompile`), then the cache's own
       directory; an artifact is memory-mapped, not read and copied;
    3. **compile**, then store the result in memory and on disk.

  Components share the cache: bytes that are a component (see
  `Wasmbeam.Component.component?/1`) come back as a `Wasmbeam.Component`,
  stored and sealed the same way (a component's artifact is read from the
  verified file rather than memory-mapped: Wasmtime loads components from
  memory or a path only).

  `Wasmbeam.Application` starts one cache, named `Wasmbeam.ModuleCache`;
  more (with other directories or bounds) can be started with
  `start_link/1` under your own supervisor.

  ## Keys

  An entry's key is a BLAKE3 hash of the module's bytes and of everything
  that decides whether compiled code fits: the engine's code-generation
  settings (Wasmtime's `Engine::precompile_compatibility_hash`: compiler,
  optimisation level, CPU features, tunables such as fuel and epochs, Wasm
  features), the Wasmtime version and the target. Change any of them and
  the key changes: a stale artifact is never found, let alone loaded.

  So a release precompiled on a machine whose CPU has other features than
  the production machine's finds none of its artifacts and compiles at
  run time. That is not silent: a precompiled directory keeps a
  `manifest` of what it was made from, and when a module is compiled
  although a precompiled directory has it for another engine, a `Logger`
  warning says which difference it was (CPU features, engine settings, or
  Wasmbeam version and machine type), and `stats/1` counts it under
  `:precompiled_mismatches`. See `docs/RELEASES.md` for what to do.

  ## Trust

  An artifact is native code that runs without validation, so the cache
  loads only what it wrote itself. On first use it creates a secret key
  (`key`, 32 random bytes, mode 0600) in its directory, and seals every
  artifact it writes with a keyed BLAKE3 hash over the entry's key and the
  artifact. Before a file is mapped as code, the hash is checked over the
  very bytes Wasmtime then maps (the same open file, not the path again):
  a corrupt, truncated, foreign or tampered file, a file made under
  another key or renamed to another entry, a symbolic link, a file that
  other users can write, or anything but a regular file (a directory, a
  FIFO, a device: looked at with `File.lstat/1` and never opened), is
  refused: reported with a `Logger` warning, removed, and the module
  recompiled. Wasmtime then checks its own header
  against the engine. Files are written to a temporary file, flushed and
  renamed into place, never modified in place, so a reader never sees a
  torn file.

  Precompiled artifacts shipped in a release are sealed with a public
  key (the hash then works as a checksum, and binds the file to its entry)
  and are trusted like the rest of the release — whoever can write the
  release's `priv/` can replace the NIF itself. They are never removed by
  the cache; a refused one is reported and skipped.

  ## Bounds

    * memory: at most `:memory_entries` modules (default 64), the least
      recently used dropped first (`0`: no memory tier). A dropped module stays alive as long as
      anything else references it; the cache only lets go of its own
      reference. Each entry also keeps its engine alive.
    * disk: at most `:max_bytes` (default 1 GiB) of artifacts; after each
      write, the least recently used (by modification time, which a disk
      hit refreshes) are removed. Precompiled directories are not counted.

  ## Concurrency

  Many processes asking for the same module at once cause one compilation:
  the first starts a worker process that loads or compiles; the others
  wait for that worker (by monitor) and get its result. Unrelated modules
  compile in parallel: the cache's GenServer only owns the tables and does
  the bookkeeping (eviction, `clear/1`, `stats/1`); no compilation runs in
  it.

  ## Options (`start_link/1` and the application environment)

    * `:name` - the cache's name (default `Wasmbeam.ModuleCache`)
    * `:dir` - its directory (default
      `:filename.basedir(:user_cache, "wasmbeam")`)
    * `:max_bytes` - bound on the directory's artifacts (default 1 GiB)
    * `:memory_entries` - bound on modules kept in memory (default 64)
    * `:precompiled` - read-only directories to look in first: paths, or
      `{app, relative_path}` resolved with `Application.app_dir/2` (default
      `[]`; `mix wasmbeam.precompile` prints the line to add)

  The default cache reads them from the application environment:

      config :wasmbeam, Wasmbeam.ModuleCache,
        enabled: true,
        dir: "/var/cache/my_app/wasmbeam",
        precompiled: [{:my_app, "priv/wasm_cache"}]

  `enabled: true` makes `Wasmbeam.load/3` use the cache by default (it is
  off unless configured; `Wasmbeam.Module.compile/3` takes `cache: true`).

  ## Examples

      iex> {:ok, module} = Wasmbeam.ModuleCache.compile(Wasmbeam.Engine.default(), "(module)")
      iex> {:ok, again} = Wasmbeam.ModuleCache.compile(Wasmbeam.Engine.default(), "(module)")
      iex> module == again
      true
  """

  use GenServer

  require Logger

  import Bitwise, only: [<<<: 2]

  alias Wasmbeam.{Engine, Error, Native}
  alias Wasmbeam.ModuleCache.{Disk, Manifest}

  @default_memory_entries 64
  # Up to this size a module's key is hashed on a normal scheduler (tens of
  # microseconds); larger ones go to a dirty scheduler.
  @small_module_bytes 64 * 1024
  @default_max_bytes 1 <<< 30

  @counters [
    :compiles,
    :memory_hits,
    :disk_hits,
    :precompiled_hits,
    :precompiled_mismatches,
    :joined,
    :refused,
    :writes,
    :write_errors,
    :disk_evictions,
    :memory_evictions
  ]

  @type name :: atom()

  @type stats :: %{
          compiles: non_neg_integer(),
          memory_hits: non_neg_integer(),
          disk_hits: non_neg_integer(),
          precompiled_hits: non_neg_integer(),
          precompiled_mismatches: non_neg_integer(),
          joined: non_neg_integer(),
          refused: non_neg_integer(),
          writes: non_neg_integer(),
          write_errors: non_neg_integer(),
          disk_evictions: non_neg_integer(),
          memory_evictions: non_neg_integer(),
          memory_entries: non_neg_integer(),
          disk_entries: non_neg_integer(),
          disk_bytes: non_neg_integer(),
          dir: Path.t()
        }

  @doc """
  Starts a cache (see the module doc for the options). The default cache
  is started by `Wasmbeam.Application`.

      iex> dir = Path.join(System.tmp_dir!(), "wasmbeam-doc-#{System.pid()}-#{System.unique_integer([:positive])}")
      iex> {:ok, pid} = Wasmbeam.ModuleCache.start_link(name: :doc_cache, dir: dir)
      iex> {:ok, _module} = Wasmbeam.ModuleCache.compile(Wasmbeam.Engine.default(), "(module)", cache: :doc_cache)
      iex> Wasmbeam.ModuleCache.stats(:doc_cache).compiles
      1
      iex> GenServer.stop(pid)
      iex> File.rm_rf!(dir) != []
      true
  """
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(options \\ []) do
    name = Keyword.get(options, :name, __MODULE__)
    GenServer.start_link(__MODULE__, Keyword.put(options, :name, name), name: name)
  end

  @doc false
  def child_spec(options) do
    %{
      id: Keyword.get(options, :name, __MODULE__),
      start: {__MODULE__, :start_link, [options]}
    }
  end

  @doc """
  Compiles `bytes` (wasm or WAT) with `engine`, or returns the module from
  the cache. `options`: `cache:` the cache's name (default
  `Wasmbeam.ModuleCache`).

      iex> {:ok, module} = Wasmbeam.ModuleCache.compile(Wasmbeam.Engine.default(), ~S[(module (func (export "f")))])
      iex> Wasmbeam.Module.exports(module)
      [{"f", {:func, [], []}}]

      iex> {:error, error} = Wasmbeam.ModuleCache.compile(Wasmbeam.Engine.default(), "(module", cache: :no_such_cache)
      iex> error.message
      "module cache :no_such_cache is not running"
  """
  @spec compile(Engine.t(), binary(), keyword()) ::
          {:ok, Wasmbeam.Module.t() | Wasmbeam.Component.t()} | {:error, Error.t()}
  def compile(engine, bytes, options \\ []) do
    case fetch(engine, bytes, options) do
      {:ok, module, _source} -> {:ok, module}
      {:error, _} = error -> error
    end
  end

  @typedoc """
  Where `fetch/3` found a module: in memory, in the cache's directory, in
  a precompiled directory, from another process that was loading or
  compiling it at the same time (`:joined`), or nowhere (`:miss`: it was
  compiled).
  """
  @type source :: :memory_hit | :disk_hit | :precompiled_hit | :joined | :miss

  @doc """
  Like `compile/3`, and says where the module (or component) came from (see `t:source/0`),
  for tools that report it, such as `mix wasmbeam.run --verbose`.

  Options, besides `cache:`:

    * `notify_compile:` - a pid that receives `{:wasmbeam_compiling, entry}`
      when the module is in no tier and its compilation begins, so that a
      tool can say "compiling" while it waits rather than guess. Nothing is
      sent on a hit, nor to a process that joins another's compilation.

  ## Examples

      iex> wat = "(module (global i64 (i64.const \#{System.unique_integer()})))"
      iex> {:ok, _module, :miss} = Wasmbeam.ModuleCache.fetch(Wasmbeam.Engine.default(), wat, notify_compile: self())
      iex> receive do: ({:wasmbeam_compiling, _entry} -> :told), after: (0 -> :not_told)
      :told
      iex> {:ok, _module, source} = Wasmbeam.ModuleCache.fetch(Wasmbeam.Engine.default(), wat, notify_compile: self())
      iex> {source, receive(do: ({:wasmbeam_compiling, _entry} -> :told), after: (0 -> :not_told))}
      {:memory_hit, :not_told}
  """
  @spec fetch(Engine.t(), binary(), keyword()) ::
          {:ok, Wasmbeam.Module.t() | Wasmbeam.Component.t(), source()} | {:error, Error.t()}
  def fetch(engine, bytes, options \\ [])

  def fetch(%Engine{} = engine, bytes, options) when is_binary(bytes) and is_list(options) do
    with {:ok, cache} <- lookup_cache(Keyword.get(options, :cache, __MODULE__)),
         {:ok, notify} <- notify_option(Keyword.get(options, :notify_compile)) do
      entry = entry(engine, bytes)
      metadata = %{cache: cache.name, entry: entry, byte_size: byte_size(bytes)}
      # The lookup path reads the cache's settings from this map; the
      # process to notify is the one setting of this call's own.
      cache = Map.put(cache, :notify_compile, notify)

      Wasmbeam.Telemetry.span(
        [:wasmbeam, :module_cache, :fetch],
        metadata,
        fn -> lookup(cache, engine, bytes, entry, 0) end,
        fn {result, source} -> %{result: source, error: Wasmbeam.Telemetry.error(result)} end
      )
      |> case do
        {{:ok, module}, source} -> {:ok, module, source}
        {{:error, _} = error, _error_or_joined} -> error
      end
    end
  end

  def fetch(%Engine{}, bytes, options) when is_binary(bytes),
    do: {:error, Error.new(:argument, "options must be a keyword list, got: #{inspect(options)}")}

  def fetch(%Engine{}, other, _),
    do: {:error, Error.new(:argument, "expected wasm bytes or WAT text, got: #{inspect(other)}")}

  def fetch(other, _, _),
    do: {:error, Error.new(:argument, "expected a Wasmbeam.Engine, got: #{inspect(other)}")}

  defp notify_option(pid) when is_pid(pid) or pid == nil, do: {:ok, pid}

  defp notify_option(other),
    do: {:error, Error.new(:argument, "notify_compile must be a pid, got: #{inspect(other)}")}

  @doc "Like `compile/3`, but returns the module or raises `Wasmbeam.Error`."
  @spec compile!(Engine.t(), binary(), keyword()) :: Wasmbeam.Module.t()
  def compile!(engine, bytes, options \\ []),
    do: compile(engine, bytes, options) |> Error.unwrap!()

  @doc """
  Reads a `.wasm` or `.wat` file and compiles it through the cache; for
  tools such as `mix wasmbeam.run`.

      iex> path = Path.join(System.tmp_dir!(), "wasmbeam-doc-#{System.pid()}-#{System.unique_integer([:positive])}.wat")
      iex> File.write!(path, "(module)")
      iex> {:ok, _module} = Wasmbeam.ModuleCache.compile_file(Wasmbeam.Engine.default(), path)
      iex> File.rm!(path)
      :ok
  """
  @spec compile_file(Engine.t(), Path.t(), keyword()) ::
          {:ok, Wasmbeam.Module.t()} | {:error, Error.t()}
  def compile_file(engine, path, options \\ []) do
    with {:ok, bytes} <- Wasmbeam.Module.read_file(path), do: compile(engine, bytes, options)
  end

  @doc "Like `compile_file/3`, but returns the module or raises `Wasmbeam.Error`."
  @spec compile_file!(Engine.t(), Path.t(), keyword()) :: Wasmbeam.Module.t()
  def compile_file!(engine, path, options \\ []),
    do: compile_file(engine, path, options) |> Error.unwrap!()

  @doc """
  The cache key of `bytes` compiled by `engine`, 64 hex digits: the file
  name of its artifact (plus `.cwasm`).

      iex> key = Wasmbeam.ModuleCache.entry(Wasmbeam.Engine.default(), "(module)")
      iex> byte_size(key)
      64
      iex> key == Wasmbeam.ModuleCache.entry(Wasmbeam.Engine.new!(consume_fuel: true), "(module)")
      false
  """
  @spec entry(Engine.t(), binary()) :: String.t()
  def entry(%Engine{ref: ref}, bytes) when byte_size(bytes) <= @small_module_bytes,
    do: Native.module_cache_entry_small(ref, bytes)

  def entry(%Engine{ref: ref}, bytes) when is_binary(bytes),
    do: Native.module_cache_entry(ref, bytes)

  @doc """
  Compiles `bytes` and writes the artifact into `dir`, for a release's
  read-only tier (what `mix wasmbeam.precompile` does). Returns the path.

      iex> dir = Path.join(System.tmp_dir!(), "wasmbeam-doc-#{System.pid()}-#{System.unique_integer([:positive])}")
      iex> {:ok, path} = Wasmbeam.ModuleCache.precompile(Wasmbeam.Engine.default(), "(module)", dir)
      iex> Path.extname(path)
      ".cwasm"
      iex> File.rm_rf!(dir) != []
      true
  """
  @spec precompile(Engine.t(), binary(), Path.t()) :: {:ok, Path.t()} | {:error, Error.t()}
  def precompile(%Engine{} = engine, bytes, dir) when is_binary(bytes) do
    entry = entry(engine, bytes)
    path = Disk.artifact_path(dir, entry)

    with :ok <- mkdir(dir),
         {:ok, module} <- compile_code(engine, bytes),
         {:ok, _size} <- Disk.write(module, Disk.precompiled_key(), entry, path) do
      Manifest.add(dir, engine, bytes, entry)
      {:ok, path}
    end
  end

  @doc "Like `precompile/3`, but returns the path or raises `Wasmbeam.Error`."
  @spec precompile!(Engine.t(), binary(), Path.t()) :: Path.t()
  def precompile!(engine, bytes, dir), do: precompile(engine, bytes, dir) |> Error.unwrap!()

  defp mkdir(dir) do
    case File.mkdir_p(dir) do
      :ok ->
        :ok

      {:error, reason} ->
        {:error, Error.new(:argument, "cannot create #{dir}: #{:file.format_error(reason)}")}
    end
  end

  @doc """
  Empties the cache: its memory tier and its directory's artifacts (not
  its key, nor the precompiled directories).

      iex> Wasmbeam.ModuleCache.clear()
      :ok
  """
  @spec clear(name()) :: :ok | {:error, Error.t()}
  def clear(name \\ __MODULE__) do
    with {:ok, _} <- lookup_cache(name), do: GenServer.call(name, :clear, :infinity)
  end

  @doc """
  Counters since the cache started, and what it holds now.

      iex> stats = Wasmbeam.ModuleCache.stats()
      iex> Enum.all?([:compiles, :memory_hits, :disk_hits, :disk_bytes], &is_integer(stats[&1]))
      true
  """
  @spec stats(name()) :: stats() | {:error, Error.t()}
  def stats(name \\ __MODULE__) do
    with {:ok, cache} <- lookup_cache(name) do
      artifacts = Disk.artifacts(Disk.modules_dir(cache.dir))

      @counters
      |> Enum.with_index(1)
      |> Map.new(fn {counter, index} -> {counter, :counters.get(cache.counters, index)} end)
      |> Map.merge(%{
        memory_entries: :ets.info(cache.memory, :size),
        disk_entries: length(artifacts),
        disk_bytes: artifacts |> Enum.map(&elem(&1, 1)) |> Enum.sum(),
        dir: cache.dir
      })
    end
  end

  # ---------------------------------------------------------------------
  # The lookup path, run in the calling process.

  defp lookup_cache(name) when is_atom(name) do
    case :persistent_term.get({__MODULE__, name}, nil) do
      nil -> {:error, Error.new(:argument, "module cache #{inspect(name)} is not running")}
      cache -> {:ok, cache}
    end
  end

  defp lookup_cache(other),
    do: {:error, Error.new(:argument, "cache must be a cache name, got: #{inspect(other)}")}

  # `lookup/5` answers `{result, source}`: where the module came from
  # (`:memory_hit`, `:disk_hit`, `:precompiled_hit`, `:joined`, `:miss`),
  # or `:error`.
  #
  # A worker that was killed leaves its flight behind; give up on the
  # cache after a few such rounds rather than loop.
  @max_rounds 3

  defp lookup(cache, engine, bytes, entry, round) when round >= @max_rounds,
    do: compile_uncached(cache, engine, bytes, entry)

  defp lookup(cache, engine, bytes, entry, round) do
    key = {engine.ref, entry}

    case :ets.lookup(cache.memory, key) do
      [{^key, module, _used}] ->
        :ets.update_element(cache.memory, key, {3, System.monotonic_time()})
        bump(cache, :memory_hits)
        {{:ok, module}, :memory_hit}

      [] ->
        join_or_lead(cache, engine, bytes, entry, round)
    end
  end

  # One process per entry (the flight's worker) loads or compiles; the
  # others monitor it and take the result from its exit reason.
  defp join_or_lead(cache, engine, bytes, entry, round) do
    key = {engine.ref, entry}
    # The worker's log lines (a compile, a refused artifact) carry the
    # caller's metadata: a request id, a job id.
    metadata = Logger.metadata()

    worker =
      spawn(fn ->
        Logger.metadata(metadata)
        run_worker(cache, engine, bytes, entry)
      end)

    if :ets.insert_new(cache.flights, {key, worker}) do
      await(worker, cache, engine, bytes, entry, round, :lead)
    else
      Process.exit(worker, :kill)

      case :ets.lookup(cache.flights, key) do
        [{^key, other}] -> await(other, cache, engine, bytes, entry, round, :join)
        [] -> lookup(cache, engine, bytes, entry, round)
      end
    end
  end

  defp await(worker, cache, engine, bytes, entry, round, role) do
    ref = Process.monitor(worker)
    if role == :lead, do: send(worker, :go)

    receive do
      {:DOWN, ^ref, :process, ^worker, {:shutdown, {__MODULE__, result}}} ->
        if role == :join do
          bump(cache, :joined)
          {elem(result, 0), :joined}
        else
          result
        end

      {:DOWN, ^ref, :process, ^worker, :noproc} ->
        # Gone before we looked: it finished (its module is in memory by
        # now, or it failed and this caller tries itself), or it was killed
        # and left its row behind, which only this exact object matches.
        :ets.delete_object(cache.flights, {{engine.ref, entry}, worker})
        lookup(cache, engine, bytes, entry, round + 1)

      {:DOWN, ^ref, :process, ^worker, _killed_or_crashed} ->
        :ets.delete_object(cache.flights, {{engine.ref, entry}, worker})
        lookup(cache, engine, bytes, entry, round + 1)
    end
  end

  defp run_worker(cache, engine, bytes, entry) do
    # The caller sends :go right after registering this worker; if the
    # caller is killed in between, give up rather than block the flight.
    go? =
      receive do
        :go -> true
      after
        5_000 -> false
      end

    result =
      try do
        if go?, do: load_or_compile(cache, engine, bytes, entry), else: :no_go
      after
        :ets.delete_object(cache.flights, {{engine.ref, entry}, self()})
      end

    if go?, do: exit({:shutdown, {__MODULE__, result}}), else: exit(:no_go)
  end

  defp load_or_compile(cache, engine, bytes, entry) do
    case load_precompiled(cache, engine, entry) || load_own(cache, engine, entry) do
      {:ok, module, counter} ->
        bump(cache, counter)
        {remember(cache, engine, entry, module), source(counter)}

      nil ->
        report_precompiled_mismatch(cache, engine, bytes)
        notify_compile(cache, entry)

        case compile_code(engine, bytes) do
          {:ok, module} ->
            bump(cache, :compiles)
            store(cache, module, entry)
            {remember(cache, engine, entry, module), :miss}

          {:error, _} = error ->
            {error, :error}
        end
    end
  end

  defp notify_compile(%{notify_compile: pid}, entry) when is_pid(pid),
    do: send(pid, {:wasmbeam_compiling, entry})

  defp notify_compile(_cache, _entry), do: :ok

  defp source(:precompiled_hits), do: :precompiled_hit
  defp source(:disk_hits), do: :disk_hit

  defp load_precompiled(cache, engine, entry) do
    Enum.find_value(cache.precompiled, fn dir ->
      path = Disk.artifact_path(resolve_dir(dir), entry)

      case Disk.load(engine, Disk.precompiled_key(), entry, path, false) do
        {:ok, ref} ->
          {:ok, %Wasmbeam.Module{ref: ref, engine: engine}, :precompiled_hits}

        {:ok, ref, :component} ->
          {:ok, %Wasmbeam.Component{ref: ref, engine: engine}, :precompiled_hits}

        {:refused, reason} ->
          refused(cache, entry, path, reason)
          nil

        :miss ->
          nil
      end
    end)
  end

  # A miss that precompiling was meant to prevent is reported, once per
  # compile: the memory and disk tiers serve the module afterwards.
  defp report_precompiled_mismatch(cache, engine, bytes) do
    Enum.find_value(cache.precompiled, fn dir ->
      dir = resolve_dir(dir)

      with {reason, _source} <- Manifest.mismatch(dir, engine, bytes) do
        bump(cache, :precompiled_mismatches)

        Logger.warning(
          "Wasmbeam.ModuleCache: #{dir} has this module precompiled, but #{mismatch_text(reason)}; " <>
            "compiling it here instead (see docs/RELEASES.md, CPU features)"
        )
      end
    end)
  end

  defp mismatch_text(:cpu),
    do:
      "for another CPU: it was made with the same engine settings and Wasmbeam version on a " <>
        "machine whose CPU features differ from this one's, and compiled code is specific to them"

  defp mismatch_text(:settings), do: "for an engine with other settings than this one"

  defp mismatch_text(:build),
    do:
      "by another Wasmbeam version or for another machine type (#{:erlang.system_info(:system_architecture)} here)"

  defp resolve_dir({app, relative}), do: Application.app_dir(app, relative)
  defp resolve_dir(path), do: path

  defp load_own(cache, engine, entry) do
    with {:ok, key} <- disk_key(cache),
         path = Disk.artifact_path(Disk.modules_dir(cache.dir), entry),
         {:ok, code} <- loaded_code(engine, Disk.load(engine, key, entry, path, true)) do
      Disk.touch(path)
      {:ok, code, :disk_hits}
    else
      {:refused, reason} ->
        refused(cache, entry, Disk.artifact_path(Disk.modules_dir(cache.dir), entry), reason)
        nil

      _miss_or_unusable_dir ->
        nil
    end
  end

  defp loaded_code(engine, {:ok, ref}), do: {:ok, %Wasmbeam.Module{ref: ref, engine: engine}}

  defp loaded_code(engine, {:ok, ref, :component}),
    do: {:ok, %Wasmbeam.Component{ref: ref, engine: engine}}

  defp loaded_code(_engine, other), do: other

  # Modules and components share the cache: the bytes say which they are
  # (a component's binary has layer 1 in its header; its text begins with
  # `(component`).
  defp compile_code(engine, bytes) do
    if Wasmbeam.Component.component?(bytes),
      do: Wasmbeam.Component.compile(engine, bytes),
      else: Wasmbeam.Module.compile(engine, bytes)
  end

  defp refused(cache, entry, path, reason) do
    bump(cache, :refused)
    metadata = %{cache: cache.name, entry: entry, path: path, reason: reason}
    Wasmbeam.Telemetry.execute([:wasmbeam, :module_cache, :refused], %{}, metadata)
  end

  defp store(cache, module, entry) do
    with {:ok, key} <- disk_key(cache),
         path = Disk.artifact_path(Disk.modules_dir(cache.dir), entry),
         {:ok, _size} <- Disk.write(module, key, entry, path) do
      bump(cache, :writes)
      GenServer.cast(cache.name, :written)
    else
      {:error, %Error{message: message}} ->
        bump(cache, :write_errors)
        Logger.warning("Wasmbeam.ModuleCache could not write an artifact: #{message}")
    end
  end

  # `memory_entries: 0` makes a disk-only cache.
  defp remember(%{memory_entries: 0}, _engine, _entry, module), do: {:ok, module}

  defp remember(cache, engine, entry, module) do
    :ets.insert(cache.memory, {{engine.ref, entry}, module, System.monotonic_time()})

    if :ets.info(cache.memory, :size) > cache.memory_entries,
      do: GenServer.cast(cache.name, :trim_memory)

    {:ok, module}
  end

  # When the cache cannot be used at all (its workers keep being killed),
  # still give the caller its module.
  defp compile_uncached(cache, engine, bytes, entry) do
    notify_compile(cache, entry)

    case compile_code(engine, bytes) do
      {:ok, module} ->
        bump(cache, :compiles)
        {{:ok, module}, :miss}

      {:error, _} = error ->
        {error, :error}
    end
  end

  defp disk_key(cache) do
    case :ets.lookup(cache.flights, :key) do
      [{:key, key}] -> {:ok, key}
      [] -> GenServer.call(cache.name, :disk_key, :infinity)
    end
  end

  defp bump(cache, counter) do
    :counters.add(cache.counters, index(counter), 1)
    true
  end

  for {counter, index} <- Enum.with_index(@counters, 1) do
    defp index(unquote(counter)), do: unquote(index)
  end

  # ---------------------------------------------------------------------
  # The GenServer: owns the tables, creates the key, evicts.

  @impl true
  def init(options) do
    Process.flag(:trap_exit, true)
    name = Keyword.fetch!(options, :name)
    env = if name == __MODULE__, do: Application.get_env(:wasmbeam, __MODULE__, []), else: []
    option = fn key, default -> Keyword.get(options, key, Keyword.get(env, key, default)) end

    with {:ok, dir} <- check_dir(option.(:dir, default_dir())),
         {:ok, max_bytes} <- check_count(:max_bytes, option.(:max_bytes, @default_max_bytes)),
         {:ok, memory_entries} <-
           check_count(:memory_entries, option.(:memory_entries, @default_memory_entries)),
         {:ok, precompiled} <- check_precompiled(option.(:precompiled, [])) do
      cache = %{
        name: name,
        dir: dir,
        max_bytes: max_bytes,
        memory_entries: memory_entries,
        precompiled: precompiled,
        memory: :ets.new(:wasmbeam_module_cache_memory, [:set, :public, read_concurrency: true]),
        flights: :ets.new(:wasmbeam_module_cache_flights, [:set, :public]),
        counters: :counters.new(length(@counters), [:write_concurrency])
      }

      :persistent_term.put({__MODULE__, name}, cache)
      {:ok, cache}
    else
      {:error, %Error{} = error} -> {:stop, error}
    end
  end

  defp default_dir, do: :filename.basedir(:user_cache, "wasmbeam") |> to_string()

  defp check_dir(dir) when is_binary(dir) and dir != "", do: {:ok, Path.expand(dir)}

  defp check_dir(dir),
    do: {:error, Error.new(:argument, "dir must be a non-empty path, got: #{inspect(dir)}")}

  defp check_count(_key, n) when is_integer(n) and n >= 0, do: {:ok, n}

  defp check_count(key, n),
    do:
      {:error, Error.new(:argument, "#{key} must be a non-negative integer, got: #{inspect(n)}")}

  defp check_precompiled(dirs) when is_list(dirs) do
    if Enum.all?(
         dirs,
         &(is_binary(&1) or match?({app, rel} when is_atom(app) and is_binary(rel), &1))
       ),
       do: {:ok, dirs},
       else:
         {:error,
          Error.new(
            :argument,
            "precompiled must be a list of paths or {app, relative_path}, got: #{inspect(dirs)}"
          )}
  end

  defp check_precompiled(other), do: check_precompiled([other])

  @impl true
  def handle_call(:disk_key, _from, cache) do
    reply =
      case :ets.lookup(cache.flights, :key) do
        [{:key, key}] ->
          {:ok, key}

        [] ->
          with {:ok, key} <- Disk.ensure_key(cache.dir) do
            :ets.insert(cache.flights, {:key, key})
            {:ok, key}
          end
      end

    {:reply, reply, cache}
  end

  def handle_call(:clear, _from, cache) do
    :ets.delete_all_objects(cache.memory)

    for {path, _, _} <- Disk.artifacts(Disk.modules_dir(cache.dir)), do: File.rm(path)
    {:reply, :ok, cache}
  end

  # A request meant for another kind of process is answered, not a crash.
  def handle_call(request, _from, cache) do
    {:reply,
     {:error, Error.new(:argument, "not a request for a module cache: #{inspect(request)}")},
     cache}
  end

  @impl true
  def handle_cast(:written, cache) do
    removed = Disk.evict(Disk.modules_dir(cache.dir), cache.max_bytes)
    :counters.add(cache.counters, index(:disk_evictions), removed)
    {:noreply, cache}
  end

  def handle_cast(:trim_memory, cache) do
    excess = :ets.info(cache.memory, :size) - cache.memory_entries

    if excess > 0 do
      cache.memory
      |> :ets.tab2list()
      |> Enum.sort_by(fn {_key, _module, used} -> used end)
      |> Enum.take(excess)
      |> Enum.each(&:ets.delete_object(cache.memory, &1))

      :counters.add(cache.counters, index(:memory_evictions), excess)
    end

    {:noreply, cache}
  end

  def handle_cast(request, cache) do
    Logger.debug("Wasmbeam.ModuleCache ignored the cast #{inspect(request)}")
    {:noreply, cache}
  end

  # Stray messages (it traps exits: exit signals of processes it is not
  # linked to come as messages too).
  @impl true
  def handle_info(message, cache) do
    Logger.debug("Wasmbeam.ModuleCache ignored #{inspect(message)}")
    {:noreply, cache}
  end

  @impl true
  def terminate(_reason, cache) do
    :persistent_term.erase({__MODULE__, cache.name})
    :ok
  end
end
