defmodule Wasmbeam.Instance do
  @moduledoc """
  An instance of a module in a store: the thing you call.

  An instance comes in two kinds, and `call/4` takes either:

    * **a bare instance**, the `%Wasmbeam.Instance{}` struct from `new/3`.
      It belongs to no process: the process that calls a function runs it,
      in slices of about 100 µs on that process's scheduler, yielding
      between slices like a process that ran out of reductions, so a long
      call never blocks the VM. From its second slice to its return, a long
      call runs its process at `:low` priority (unless the process chose a
      priority other than `:normal`), so woken processes go first. Host
      functions run in the calling process.
      A store runs one call at a time (other callers wait, see
      `Wasmbeam.CallOptions`). It is freed when no process refers to it.
    * **an instance process**, started with `start_link/1` or as a child
      (`{Wasmbeam.Instance, module: module, name: MyApp.Plugin}`): a
      GenServer that owns its instance, is registered by name (an atom,
      `{:global, term}` or `{:via, module, term}`), runs calls one at a time
      from a bounded queue while staying responsive, cancels the calls of
      callers that die, and is restarted fresh by its supervisor if its store
      is poisoned. Host functions run in the instance process. See
      `Wasmbeam.Instance.Server` for cancellation and the details.

  Which to use: a bare instance for calls made by one process (or a few
  that take turns), the cheapest path; an instance process for a long-lived
  named instance shared by many callers, with state that must survive
  between calls; a `Wasmbeam.Pool` for many concurrent callers of the same
  module.

  ## Examples

      iex> module = Wasmbeam.Module.compile!(~S[(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))])
      iex> {:ok, instance} = Wasmbeam.Instance.new(module)
      iex> Wasmbeam.Instance.call(instance, "add", [1, 2])
      {:ok, [3]}
      iex> Wasmbeam.Instance.call(instance, "add", [1])
      {:error, %Wasmbeam.Error{kind: :arity, message: "expected 2 argument(s), got 1"}}
      iex> {:error, %Wasmbeam.Error{kind: :not_found}} = Wasmbeam.Instance.call(instance, "sub", [1, 2])

  Linking two modules: instantiate both into one store.

      iex> lib = Wasmbeam.Module.compile!(~S[(module (func (export "double") (param i32) (result i32) local.get 0 i32.const 2 i32.mul))])
      iex> app = Wasmbeam.Module.compile!(~S[(module (import "lib" "double" (func $d (param i32) (result i32))) (func (export "quad") (param i32) (result i32) local.get 0 call $d call $d))])
      iex> store = Wasmbeam.Store.new!()
      iex> lib_instance = Wasmbeam.Instance.new!(lib, %{}, store: store)
      iex> app_instance = Wasmbeam.Instance.new!(app, %{"lib" => lib_instance}, store: store)
      iex> Wasmbeam.Instance.call(app_instance, "quad", [5])
      {:ok, [20]}
  """

  alias Wasmbeam.{
    CallOptions,
    Driver,
    Error,
    Func,
    Global,
    Imports,
    LinkedModule,
    Memory,
    Module,
    Native,
    Store,
    Table,
    Telemetry
  }

  @enforce_keys [:ref, :store, :module]
  defstruct [:ref, :store, :module]

  @type t :: %__MODULE__{ref: reference(), store: Store.t(), module: Module.t()}

  @doc """
  Instantiates `module` with `imports` (see `Wasmbeam.Imports`) and runs
  its start function.

  `module` may also be a `Wasmbeam.LinkedModule`, whose imports were
  resolved once when it was linked (then `imports` is `%{}`): the fastest
  way to make many instances of one module.

  ## Options

    * `:store` - instantiate into this `Wasmbeam.Store` (needed to link to
      other instances); by default a new store is created
    * the store options of `Wasmbeam.Store` (`:memory_size`, `:fuel`, ...)
      for the new store
    * `:timeout`, and `:fuel` as a per-call budget, for the start function
      (see `Wasmbeam.CallOptions`)
    * `:wasi` - WASI options (see `Wasmbeam.Wasi`): the store gets a WASI
      context that grants exactly what they name, and the module's
      `wasi_snapshot_preview1` imports that `imports` does not name come
      from it. A reactor's `_initialize` export is called before `new/3`
      returns.
  """
  @spec new(Module.t() | LinkedModule.t(), Imports.t(), keyword()) ::
          {:ok, t()} | {:error, Error.t()}
  def new(module, imports \\ %{}, options \\ [])

  def new(%Module{} = module, imports, options) when is_list(options) do
    instantiate(module, options, fn store, wasi? ->
      with {:ok, resolved} <- Imports.resolve(module, imports, wasi: wasi?) do
        {:ok, &Native.instance_new(store.ref, module.ref, resolved, &1)}
      end
    end)
  end

  def new(%LinkedModule{module: %Wasmbeam.Component{}} = linked, imports, options)
      when is_list(options) do
    if imports == %{},
      do: Wasmbeam.Component.Instance.new_linked(linked, options),
      else:
        {:error,
         Error.new(:argument, "a linked component has its imports already: pass %{} as imports")}
  end

  def new(%LinkedModule{} = linked, imports, options) when is_list(options) do
    if imports == %{} do
      instantiate(linked.module, options, fn store, _wasi? ->
        {:ok, &Native.linked_instantiate(store.ref, linked.ref, &1)}
      end)
    else
      {:error,
       Error.new(:argument, "a linked module has its imports already: pass %{} as imports")}
    end
  end

  def new(%Wasmbeam.Component{} = component, imports, options) when is_list(options),
    do: Wasmbeam.Component.Instance.new(component, imports, options)

  def new(other, _imports, options) when is_list(options),
    do:
      {:error,
       Error.new(
         :argument,
         "expected a %Wasmbeam.Module{} or %Wasmbeam.LinkedModule{}, got: #{inspect(other)}"
       )}

  defp instantiate(module, options, starter) do
    {store_option, options} = Keyword.pop(options, :store)
    {wasi_options, options} = Keyword.pop(options, :wasi)
    {store_options, call_options} = Keyword.split(options, Store.limit_keys() -- [:fuel])
    {initial_fuel, call_options} = initial_fuel(store_option, call_options)

    with {:ok, store} <- store_for(store_option, module, store_options ++ initial_fuel),
         {:ok, native_options} <- CallOptions.to_native(call_options),
         :ok <- Wasmbeam.Wasi.attach(store, wasi_options),
         {:ok, start} <- starter.(store, wasi_options != nil),
         {:ok, ref} <- Driver.run(store.ref, native_options, start),
         instance = %__MODULE__{ref: ref, store: store, module: module},
         :ok <- Wasmbeam.Wasi.initialize(instance, wasi_options, call_options) do
      {:ok, instance}
    end
  end

  # For a new store, `fuel:` is the store's initial fuel; for a given
  # store, it is a budget for the start function.
  defp initial_fuel(nil, options) do
    case Keyword.pop(options, :fuel) do
      {nil, options} -> {[], options}
      {fuel, options} -> {[fuel: fuel], options}
    end
  end

  defp initial_fuel(_store, options), do: {[], options}

  @doc false
  # The store a new instance of `code` (a module or component) goes into:
  # a new one with `options` as its limits, or the given one (no limits).
  @spec store_for(Store.t() | nil | term(), %{engine: Wasmbeam.Engine.t()}, keyword()) ::
          {:ok, Store.t()} | {:error, Error.t()}
  def store_for(nil, code, options), do: Store.new(code.engine, options)
  def store_for(%Store{} = store, _code, []), do: {:ok, store}

  def store_for(%Store{}, _code, options),
    do:
      {:error,
       Error.new(
         :argument,
         "store limits #{inspect(Keyword.keys(options))} apply only to a new store"
       )}

  def store_for(other, _, _),
    do:
      {:error, Error.new(:argument, "store must be a %Wasmbeam.Store{}, got: #{inspect(other)}")}

  @doc "Like `new/3`, but raises `Wasmbeam.Error`."
  @spec new!(Module.t() | LinkedModule.t(), Imports.t(), keyword()) :: t()
  def new!(module, imports \\ %{}, options \\ []),
    do: new(module, imports, options) |> Error.unwrap!()

  @doc """
  Starts an instance process linked to the caller: a GenServer that
  instantiates `:module` and owns the instance. Returns `{:ok, pid}`, or
  `{:error, %Wasmbeam.Error{}}` when the options are invalid or the module
  cannot be instantiated (a missing import, a trap in its start function).

  ## Options

    * `:module` (required) - a `Wasmbeam.Module`, or wasm bytes / WAT text
      to compile
    * `:imports` - the import map (see `Wasmbeam.Imports`); host functions
      run in the instance process
    * `:instance_options` - options for `new/3` (store limits such as
      `:memory_size`, initial `:fuel`, `:timeout` of the start function)
    * `:name` - register the process: an atom, `{:global, term}` or
      `{:via, module, term}` (for example a `Registry`)
    * `:max_queue` - how many calls may wait while one runs (default 64);
      beyond it, calls fail at once with an `:overloaded` error

  ## Examples

      iex> module = Wasmbeam.Module.compile!(~S[(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))])
      iex> {:ok, _pid} = Wasmbeam.Instance.start_link(module: module, name: :doc_adder)
      iex> Wasmbeam.Instance.call(:doc_adder, "add", [1, 2])
      {:ok, [3]}
      iex> {:error, %Wasmbeam.Error{kind: :argument}} = Wasmbeam.Instance.start_link(name: :no_module)
  """
  @spec start_link([Wasmbeam.Instance.Server.option()]) ::
          GenServer.on_start() | {:error, Error.t()}
  def start_link(options), do: Wasmbeam.Instance.Server.start_link(options)

  @doc """
  A child specification for an instance process, so that
  `{Wasmbeam.Instance, options}` can go in a supervision tree. Takes the
  options of `start_link/1` plus `:id` (default: the `:name`, else
  `Wasmbeam.Instance`) and `:restart` (default `:permanent`).

  ## Examples

      iex> module = Wasmbeam.Module.compile!("(module)")
      iex> spec = Wasmbeam.Instance.child_spec(module: module, name: MyApp.Plugin)
      iex> {spec.id, spec.restart}
      {MyApp.Plugin, :permanent}
  """
  @spec child_spec(keyword()) :: Supervisor.child_spec()
  def child_spec(options) when is_list(options) do
    %{
      id: Keyword.get_lazy(options, :id, fn -> Keyword.get(options, :name, __MODULE__) end),
      start: {__MODULE__, :start_link, [Keyword.drop(options, [:id, :restart])]},
      restart: Keyword.get(options, :restart, :permanent),
      type: :worker
    }
  end

  @doc """
  Stops an instance process: a call still running is cancelled and its
  caller, like every queued caller, gets a `:cancelled` error. Returns
  `:ok`, or a `:down` error if no such process runs.

  ## Examples

      iex> {:ok, pid} = Wasmbeam.Instance.start_link(module: Wasmbeam.Module.compile!("(module)"))
      iex> Wasmbeam.Instance.stop(pid)
      :ok
      iex> {:error, %Wasmbeam.Error{kind: :down}} = Wasmbeam.Instance.stop(pid)
  """
  @spec stop(GenServer.server(), term(), timeout()) :: :ok | {:error, Error.t()}
  def stop(server, reason \\ :normal, timeout \\ :infinity) do
    # Only an instance process: stopping another process by mistake would
    # be worse than an error.
    with {:ok, timeout} <- Wasmbeam.Timeout.check(timeout, "stop/3's timeout"),
         {:ok, pid} <- Wasmbeam.Instance.Server.whereis(server),
         :ok <- Wasmbeam.Instance.Server.check_instance_process(pid) do
      GenServer.stop(pid, reason, timeout)
    end
  catch
    :exit, why ->
      {:error, Error.new(:down, "no instance process #{inspect(server)}: #{inspect(why)}")}
  end

  @doc """
  Calls the exported function `name` with `args`; returns the list of
  results. `instance` is a bare instance or an instance process (a pid or
  a registered name). See `Wasmbeam.CallOptions` for `options`, and
  `Wasmbeam.Types` for how values are written.

  Through an instance process, `:timeout` also bounds the time the call
  waits in the process's queue; a call that cannot be queued fails with an
  `:overloaded` error, and one whose process is not running or exits with a
  `:down` error.

  ## Examples

      iex> module = Wasmbeam.Module.compile!(~S[(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))])
      iex> {:ok, bare} = Wasmbeam.Instance.new(module)
      iex> Wasmbeam.Instance.call(bare, "add", [1, 2])
      {:ok, [3]}
      iex> {:ok, process} = Wasmbeam.Instance.start_link(module: module)
      iex> Wasmbeam.Instance.call(process, "add", [1, 2], timeout: 100)
      {:ok, [3]}
  """
  @spec call(t() | GenServer.server(), String.t(), [Wasmbeam.Types.value()], CallOptions.t()) ::
          {:ok, [Wasmbeam.Types.value()]} | {:error, Error.t()}
  def call(instance, name, args, options \\ [])

  def call(%__MODULE__{} = instance, name, args, options) do
    with :ok <- check_name(name),
         {:ok, native} <- CallOptions.to_native(options) do
      if Telemetry.call_events?() do
        Telemetry.call_span(name, instance, instance.module, fn ->
          run_call(instance, name, args, native)
        end)
      else
        instance
        |> run_call(name, args, native)
        |> Telemetry.checked_call(name, instance, instance.module)
      end
    end
  end

  def call(%Wasmbeam.Component.Instance{} = instance, name, args, options),
    do: Wasmbeam.Component.Instance.call(instance, name, args, options)

  def call(server, name, args, options)
      when is_pid(server) or is_atom(server) or is_tuple(server) do
    with :ok <- Wasmbeam.ExportName.check_any(name) do
      # Its `:trap` and `:timeout` events come from the instance process.
      if Telemetry.call_events?() do
        Telemetry.call_span(name, server, nil, fn ->
          Wasmbeam.Instance.Server.call(server, name, args, options)
        end)
      else
        Wasmbeam.Instance.Server.call(server, name, args, options)
      end
    end
  end

  def call(other, _name, _args, _options),
    do:
      {:error,
       Error.new(
         :argument,
         "expected a %Wasmbeam.Instance{} or an instance process, got: #{inspect(other)}"
       )}

  defp run_call(%__MODULE__{ref: ref, store: store}, name, args, native),
    do: Driver.run(store.ref, native, &Native.instance_call(ref, store.ref, name, args, &1))

  @doc "Like `call/4`, but raises `Wasmbeam.Error`."
  @spec call!(t() | GenServer.server(), String.t(), [Wasmbeam.Types.value()], CallOptions.t()) ::
          [Wasmbeam.Types.value()]
  def call!(instance, name, args, options \\ []),
    do: call(instance, name, args, options) |> Error.unwrap!()

  @doc "The instance's exports, in order, as `{name, type}`."
  @spec exports(t()) :: [{String.t(), Wasmbeam.Types.extern_type()}]
  def exports(%__MODULE__{ref: ref}), do: Native.instance_exports(ref)

  @doc "Looks up an export of any kind and returns its handle."
  @spec export(t(), String.t()) ::
          {:ok, Func.t() | Memory.t() | Global.t() | Table.t() | Wasmbeam.Tag.t()}
          | {:error, Error.t()}
  def export(%__MODULE__{ref: ref}, name) do
    with :ok <- check_name(name), do: Native.instance_export(ref, name)
  end

  defp check_name(name), do: Wasmbeam.ExportName.check(name)

  @doc "Looks up an exported function, for repeated calls with `Wasmbeam.Func.call/3`."
  @spec func(t(), String.t()) :: {:ok, Func.t()} | {:error, Error.t()}
  def func(instance, name), do: typed_export(instance, name, Func, "function")

  @doc "Looks up an exported memory."
  @spec memory(t(), String.t()) :: {:ok, Memory.t()} | {:error, Error.t()}
  def memory(instance, name), do: typed_export(instance, name, Memory, "memory")

  @doc "Looks up an exported global."
  @spec global(t(), String.t()) :: {:ok, Global.t()} | {:error, Error.t()}
  def global(instance, name), do: typed_export(instance, name, Global, "global")

  @doc "Looks up an exported table."
  @spec table(t(), String.t()) :: {:ok, Table.t()} | {:error, Error.t()}
  def table(instance, name), do: typed_export(instance, name, Table, "table")

  @doc "Like `export/2`, but returns the handle or raises `Wasmbeam.Error`."
  @spec export!(t(), String.t()) ::
          Func.t() | Memory.t() | Global.t() | Table.t() | Wasmbeam.Tag.t()
  def export!(instance, name), do: export(instance, name) |> Error.unwrap!()

  @doc """
  Like `func/2`, but returns the function or raises `Wasmbeam.Error`.

      iex> instance = Wasmbeam.load!(~S[(module (func (export "f") (result i32) i32.const 7))])
      iex> f = Wasmbeam.Instance.func!(instance, "f")
      iex> Wasmbeam.Func.call!(f, [])
      [7]
      iex> Wasmbeam.Instance.func!(instance, "g")
      ** (Wasmbeam.Error) (not_found) no export named "g"
  """
  @spec func!(t(), String.t()) :: Func.t()
  def func!(instance, name), do: func(instance, name) |> Error.unwrap!()

  @doc "Like `memory/2`, but returns the memory or raises `Wasmbeam.Error`."
  @spec memory!(t(), String.t()) :: Memory.t()
  def memory!(instance, name), do: memory(instance, name) |> Error.unwrap!()

  @doc "Like `global/2`, but returns the global or raises `Wasmbeam.Error`."
  @spec global!(t(), String.t()) :: Global.t()
  def global!(instance, name), do: global(instance, name) |> Error.unwrap!()

  @doc "Like `table/2`, but returns the table or raises `Wasmbeam.Error`."
  @spec table!(t(), String.t()) :: Table.t()
  def table!(instance, name), do: table(instance, name) |> Error.unwrap!()

  defp typed_export(instance, name, struct, what) do
    case export(instance, name) do
      {:ok, %{__struct__: ^struct}} = ok -> ok
      {:ok, _other} -> {:error, Error.new(:not_found, "export #{inspect(name)} is not a #{what}")}
      {:error, _} = error -> error
    end
  end

  defimpl Inspect do
    def inspect(instance, opts) do
      exports = Wasmbeam.Types.format_exports(Wasmbeam.Instance.exports(instance), opts)
      "#Wasmbeam.Instance<#{exports}>"
    end
  end
end
