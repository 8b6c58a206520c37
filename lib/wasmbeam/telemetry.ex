defmodule Wasmbeam.Telemetry do
  @moduledoc """
  The `:telemetry` events Wasmbeam emits, and the one place that emits them.

  `:telemetry` is optional: Wasmbeam does not depend on it, and emits
  events only when the `:telemetry` module is loaded (any application
  that has `{:telemetry, "~> 1.0"}` among its dependencies, directly or
  through Phoenix, Oban, Ecto...). Whether it is loaded is looked up once,
  when Wasmbeam's application starts, and kept; `refresh/0` looks again
  (for code loaded later, in a shell or a test). Without `:telemetry`,
  each place that could emit costs one `:persistent_term` read. (Loaded
  but not started, `:telemetry` logs a warning for each event: start it
  before Wasmbeam's first compile or call, as Mix and releases do for a
  dependency.)

  ## Conventions

  Spans follow `:telemetry.span/3`: `[:wasmbeam, ..., :start]` with
  measurements `system_time` and `monotonic_time`, then either `:stop`
  with `duration` and `monotonic_time`, or `:exception` with `duration`,
  `monotonic_time` and metadata `kind`, `reason`, `stacktrace`. Times are
  in native units (`System.convert_time_unit/3` converts them). The
  metadata of a span's three events carries the same
  `telemetry_span_context`, and `:stop` repeats the metadata of `:start`.
  Single events have the measurement `system_time` (native units).

  An error returned as `{:error, %Wasmbeam.Error{}}` is not an exception:
  it ends a span with `:stop`, whose metadata then has `error:` set (it is
  `nil` otherwise).

  ## Events

  Compiling and caching modules:

    * `[:wasmbeam, :module, :compile, :start | :stop | :exception]` -
      `Wasmbeam.Module.compile/3` compiling code (not a cache hit).
      Metadata: `engine`, `byte_size` (of the wasm or WAT input),
      `where` (`:dirty_scheduler` or `:compile_thread`); at `:stop`,
      `module` (the `%Wasmbeam.Module{}` or `nil`), `name` (its name
      section's name or `nil`) and `error`.
    * `[:wasmbeam, :module_cache, :fetch, :start | :stop | :exception]` -
      `Wasmbeam.ModuleCache.compile/3` and `fetch/3`. Metadata: `cache` (its name),
      `entry` (the module's cache key: a BLAKE3 hash of its bytes and of
      the engine's settings, 64 hex digits), `byte_size`; at `:stop`,
      `result`: `:memory_hit`, `:disk_hit`, `:precompiled_hit`, `:joined`
      (another process was loading or compiling it; this one waited for
      its result), `:miss` (compiled now) or `:error`, and `error`.
    * `[:wasmbeam, :module_cache, :refused]` - a cached artifact failed its
      checks and was not loaded. Metadata: `cache`, `entry`, `path`,
      `reason`.

  Calls (see "Per-call spans" for the first one):

    * `[:wasmbeam, :call, :start | :stop | :exception]` -
      `Wasmbeam.Instance.call/4` and `Wasmbeam.Func.call/3`. Metadata:
      `export` (the export's name, `nil` for an anonymous funcref),
      `instance` (the `%Wasmbeam.Instance{}`, or the instance process as
      it was given: pid or name; `nil` for `Func.call/3`), `module` (the
      `%Wasmbeam.Module{}` of a bare instance, else `nil`); at `:stop`,
      `error`.
    * `[:wasmbeam, :call, :trap]` - a call ended in a trap (`:trap`,
      `:out_of_fuel` or a WASI `:exit`). Metadata: `export`, `instance`,
      `module` as above, `error` (its `trap` field names the trap code).
    * `[:wasmbeam, :call, :timeout]` - a call ran past its `timeout:`, or
      waited for its store or its instance process that long. Metadata
      as for `:trap`.

  For a call through an instance process, `:trap` and `:timeout` are
  emitted by the instance process (`instance` is its pid, `module` its
  module), so `Wasmbeam.Instance.Server.async_call/4` is covered too;
  for a bare instance, by the calling process.

  Instance processes (`Wasmbeam.Instance.Server`):

    * `[:wasmbeam, :instance_process, :start | :stop | :exception]` - a
      span over the life of an instance process: `:start` when it begins
      to instantiate its module, `:stop` when it stops normally (`:normal`,
      `:shutdown`, `{:shutdown, _}`), `:exception` when it fails to start
      (`kind: :error`, `reason`: the `%Wasmbeam.Error{}`), exits because its
      store was poisoned or is stopped with another reason (`kind: :exit`,
      `reason`: the exit reason, e.g. `{:wasmbeam_poisoned, message}`), or
      crashes (`kind: :error`, `reason`: the exception, with its
      `stacktrace`). A process killed outright (`:kill`) emits nothing
      more.
      Metadata: `pid`, `name` (as registered, or `nil`), `module`.
    * `[:wasmbeam, :instance_supervisor, :restart]` - an instance started
      by `Wasmbeam.InstanceSupervisor` exited abnormally and is restarted.
      Measurements: `system_time`, `restarts` (within the restart window).
      Metadata: `key`, `reason`.
    * `[:wasmbeam, :instance_supervisor, :give_up]` - it failed too often
      and is given up. Measurements: `system_time`, `restarts`. Metadata:
      `key`, `reason`, `max_restarts`, `max_seconds`.

  Pools (`Wasmbeam.Pool`):

    * `[:wasmbeam, :pool, :wait, :start | :stop | :exception]` - a
      checkout found no idle instance and asked the pool process (which
      may create an overflow instance, queue the caller, or refuse).
      Checkouts that take an idle instance emit nothing. Metadata: `pool`
      (as given to the function), `pool_pid`; at `:stop`, `error` (kinds
      `:timeout`, `:overloaded`, `:down`...).
    * `[:wasmbeam, :pool, :overflow]` - the pool created an instance
      beyond its `:size`. Measurements: `system_time`, `instances` (alive
      now, this one included). Metadata: `pool` (its name, or its pid),
      `pool_pid`.
    * `[:wasmbeam, :pool, :overloaded]` - a checkout was refused: every
      instance in use and `:max_waiting` callers waiting. Measurements:
      `system_time`, `instances`, `waiting`. Metadata: `pool`, `pool_pid`.

  ## Per-call spans

  `[:wasmbeam, :call, ...]` spans are off unless switched on, because they
  would cost every call (a span is about as dear as the call of a small
  export) whether anybody listens or not:

      config :wasmbeam, Wasmbeam.Telemetry, call_events: true

  or `Wasmbeam.Telemetry.call_events(true)` at run time. Off, they cost
  one `:persistent_term` read per call. The `:trap` and `:timeout` events
  are always on: they cost nothing on a call that succeeds.

  ## Example

      :telemetry.attach(
        "log-wasmbeam-traps",
        [:wasmbeam, :call, :trap],
        fn _event, _measurements, meta, _config ->
          Logger.warning("guest trapped in \#{meta.export}: \#{Exception.message(meta.error)}")
        end,
        nil
      )
  """

  # Called only once `Code.ensure_loaded?(:telemetry)` said yes.
  @compile {:no_warn_undefined, :telemetry}
  @compile {:inline, state: 0}

  @key {__MODULE__, :state}

  @typedoc "What Wasmbeam knows of `:telemetry`: `:absent`, `:loaded`, `:calls` (loaded, per-call spans on)."
  @type state :: :absent | :loaded | :calls

  @doc """
  Looks again whether `:telemetry` is loaded and whether per-call spans
  are configured, and returns what it found. Wasmbeam's application does
  this when it starts; call it after loading `:telemetry` later.

      iex> Wasmbeam.Telemetry.refresh() in [:absent, :loaded, :calls]
      true
  """
  @spec refresh() :: state()
  def refresh do
    calls? = Application.get_env(:wasmbeam, __MODULE__, [])[:call_events] == true

    state =
      cond do
        not Code.ensure_loaded?(:telemetry) -> :absent
        calls? -> :calls
        true -> :loaded
      end

    # A write makes the VM scan every process's heap: only on a change.
    if :persistent_term.get(@key, nil) != state, do: :persistent_term.put(@key, state)
    state
  end

  @doc """
  Switches the `[:wasmbeam, :call, ...]` spans on or off (see "Per-call
  spans"), for the whole VM; returns the state as `refresh/0` does.

      iex> Wasmbeam.Telemetry.call_events(false) in [:absent, :loaded]
      true
  """
  @spec call_events(boolean()) :: state()
  def call_events(on?) when is_boolean(on?) do
    config = Application.get_env(:wasmbeam, __MODULE__, [])
    Application.put_env(:wasmbeam, __MODULE__, Keyword.put(config, :call_events, on?))
    refresh()
  end

  @doc """
  Whether Wasmbeam emits events: `:telemetry` is loaded.

      iex> is_boolean(Wasmbeam.Telemetry.enabled?())
      true
  """
  @spec enabled?() :: boolean()
  def enabled?, do: state() != :absent

  @doc false
  # Per-call spans: one `:persistent_term` read on every call.
  @spec call_events?() :: boolean()
  def call_events?, do: :persistent_term.get(@key, nil) == :calls

  defp state do
    case :persistent_term.get(@key, nil) do
      nil -> refresh()
      state -> state
    end
  end

  @doc false
  # Emits a single event; `system_time` is added to the measurements.
  @spec execute([atom()], map(), map()) :: :ok
  def execute(event, measurements, metadata) do
    if enabled?() do
      measurements = Map.put_new(measurements, :system_time, System.system_time())
      :telemetry.execute(event, measurements, metadata)
    end

    :ok
  end

  @doc false
  # Runs `fun` in a span `prefix ++ [:start | :stop | :exception]`; the
  # `:stop` metadata is `metadata` merged with `stop_metadata.(result)`,
  # which runs only when `:telemetry` is there.
  @spec span([atom()], map(), (() -> result), (result -> map())) :: result when result: term()
  def span(prefix, metadata, fun, stop_metadata) do
    if enabled?() do
      :telemetry.span(prefix, metadata, fn ->
        result = fun.()
        {result, Map.merge(metadata, stop_metadata.(result))}
      end)
    else
      fun.()
    end
  end

  @doc false
  # Runs a call in a `[:wasmbeam, :call]` span (callers check
  # `call_events?/0` first, so that a call without spans builds nothing).
  # The events are those of `:telemetry.span/3`, emitted here with fewer
  # closures and map merges: this is on every call.
  @spec call_span(String.t() | nil, term(), term(), (() -> result)) :: result when result: term()
  def call_span(export, instance, module, fun) do
    start = System.monotonic_time()

    metadata = %{
      export: export,
      instance: instance,
      module: module,
      telemetry_span_context: make_ref()
    }

    :telemetry.execute(
      [:wasmbeam, :call, :start],
      %{system_time: System.system_time(), monotonic_time: start},
      metadata
    )

    try do
      fun.()
    catch
      kind, reason ->
        exception_metadata =
          Map.merge(metadata, %{kind: kind, reason: reason, stacktrace: __STACKTRACE__})

        :telemetry.execute([:wasmbeam, :call, :exception], ended(start), exception_metadata)
        :erlang.raise(kind, reason, __STACKTRACE__)
    else
      result ->
        result = checked_call(result, export, instance, module)
        stop_metadata = Map.put(metadata, :error, error(result))
        :telemetry.execute([:wasmbeam, :call, :stop], ended(start), stop_metadata)
        result
    end
  end

  @doc false
  # Emits `[:wasmbeam, :call, :trap | :timeout]` for a result that is one,
  # and returns it. Nothing is built for a call that succeeded.
  @spec checked_call(result, String.t() | nil, term(), term()) :: result when result: term()
  def checked_call({:ok, _} = ok, _export, _instance, _module), do: ok

  def checked_call(
        {:error, %Wasmbeam.Error{kind: kind} = error} = result,
        export,
        instance,
        module
      )
      when kind in [:trap, :out_of_fuel, :exit, :timeout] do
    event = if kind == :timeout, do: :timeout, else: :trap
    metadata = %{export: export, instance: instance, module: module, error: error}
    execute([:wasmbeam, :call, event], %{}, metadata)
    result
  end

  def checked_call(result, _export, _instance, _module), do: result

  @doc false
  # The `error` of a `:stop` event's metadata.
  @spec error(term()) :: Wasmbeam.Error.t() | nil
  def error({:error, %Wasmbeam.Error{} = error}), do: error
  def error(_result), do: nil

  @doc false
  # A span whose start and end are in different functions (the life of a
  # process): `start_span/2` emits `:start` and returns what
  # `stop_span/3` and `exception_span/6` need.
  @spec start_span([atom()], map()) :: {integer(), map()} | nil
  def start_span(prefix, metadata) do
    if enabled?() do
      start = System.monotonic_time()
      metadata = Map.put(metadata, :telemetry_span_context, make_ref())

      :telemetry.execute(
        prefix ++ [:start],
        %{system_time: System.system_time(), monotonic_time: start},
        metadata
      )

      {start, metadata}
    end
  end

  @doc false
  @spec stop_span([atom()], {integer(), map()} | nil, map()) :: :ok
  def stop_span(_prefix, nil, _extra), do: :ok

  def stop_span(prefix, {start, metadata}, extra) do
    :telemetry.execute(prefix ++ [:stop], ended(start), Map.merge(metadata, extra))
    :ok
  end

  @doc false
  @spec exception_span([atom()], {integer(), map()} | nil, atom(), term(), list(), map()) :: :ok
  def exception_span(_prefix, nil, _kind, _reason, _stacktrace, _extra), do: :ok

  def exception_span(prefix, {start, metadata}, kind, reason, stacktrace, extra) do
    metadata =
      metadata
      |> Map.merge(extra)
      |> Map.merge(%{kind: kind, reason: reason, stacktrace: stacktrace})

    :telemetry.execute(prefix ++ [:exception], ended(start), metadata)
    :ok
  end

  defp ended(start) do
    now = System.monotonic_time()
    %{duration: now - start, monotonic_time: now}
  end
end
