defmodule Wasmbeam.Instance do
  @moduledoc """
  An instance of a module in a store: the thing you call.

  The process that calls a function runs it: the call executes in slices of
  about 100 µs on that process's scheduler, yielding between slices like a
  process that ran out of reductions, so a long call never blocks the VM.
  A store runs one call at a time (others get `:busy`).

  A bare instance belongs to no process: any process may call it, and it is
  freed when no process refers to it any more. To own an instance in a
  supervised process, wrap it in a GenServer.

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
    Memory,
    Module,
    Native,
    Store,
    Table
  }

  @enforce_keys [:ref, :store, :module]
  defstruct [:ref, :store, :module]

  @type t :: %__MODULE__{ref: reference(), store: Store.t(), module: Module.t()}

  @doc """
  Instantiates `module` with `imports` (see `Wasmbeam.Imports`) and runs
  its start function.

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
  @spec new(Module.t(), Imports.t(), keyword()) :: {:ok, t()} | {:error, Error.t()}
  def new(%Module{} = module, imports \\ %{}, options \\ []) when is_list(options) do
    {store_option, options} = Keyword.pop(options, :store)
    {wasi_options, options} = Keyword.pop(options, :wasi)
    {store_options, call_options} = Keyword.split(options, Store.limit_keys() -- [:fuel])
    {initial_fuel, call_options} = initial_fuel(store_option, call_options)

    with {:ok, store} <- store_for(store_option, module, store_options ++ initial_fuel),
         {:ok, native_options} <- CallOptions.to_native(call_options),
         :ok <- Wasmbeam.Wasi.attach(store, wasi_options),
         {:ok, resolved} <- Imports.resolve(module, imports, wasi: wasi_options != nil),
         {:ok, ref} <-
           Driver.run(
             store.ref,
             native_options,
             &Native.instance_new(store.ref, module.ref, resolved, &1)
           ),
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

  defp store_for(nil, module, options), do: Store.new(module.engine, options)
  defp store_for(%Store{} = store, _module, []), do: {:ok, store}

  defp store_for(%Store{}, _module, options),
    do:
      {:error,
       Error.new(
         :argument,
         "store limits #{inspect(Keyword.keys(options))} apply only to a new store"
       )}

  defp store_for(other, _, _),
    do:
      {:error, Error.new(:argument, "store must be a %Wasmbeam.Store{}, got: #{inspect(other)}")}

  @doc "Like `new/3`, but raises `Wasmbeam.Error`."
  @spec new!(Module.t(), Imports.t(), keyword()) :: t()
  def new!(module, imports \\ %{}, options \\ []),
    do: new(module, imports, options) |> Error.unwrap!()

  @doc """
  Calls the exported function `name` with `args`; returns the list of
  results. See `Wasmbeam.CallOptions` for `options`, and
  `Wasmbeam.Types` for how values are written.
  """
  @spec call(t(), String.t(), [Wasmbeam.Types.value()], CallOptions.t()) ::
          {:ok, [Wasmbeam.Types.value()]} | {:error, Error.t()}
  def call(%__MODULE__{ref: ref, store: store}, name, args, options \\ []) when is_binary(name) do
    with :ok <- check_name(name),
         {:ok, native} <- CallOptions.to_native(options) do
      Driver.run(store.ref, native, &Native.instance_call(ref, name, args, &1))
    end
  end

  @doc "Like `call/4`, but raises `Wasmbeam.Error`."
  @spec call!(t(), String.t(), [Wasmbeam.Types.value()], CallOptions.t()) :: [
          Wasmbeam.Types.value()
        ]
  def call!(instance, name, args, options \\ []),
    do: call(instance, name, args, options) |> Error.unwrap!()

  @doc "The instance's exports, in order, as `{name, type}`."
  @spec exports(t()) :: [{String.t(), Wasmbeam.Types.extern_type()}]
  def exports(%__MODULE__{ref: ref}), do: Native.instance_exports(ref)

  @doc "Looks up an export of any kind and returns its handle."
  @spec export(t(), String.t()) ::
          {:ok, Func.t() | Memory.t() | Global.t() | Table.t() | Wasmbeam.Tag.t()}
          | {:error, Error.t()}
  def export(%__MODULE__{ref: ref}, name) when is_binary(name) do
    with :ok <- check_name(name), do: Native.instance_export(ref, name)
  end

  # Export names are UTF-8 by the spec; anything else cannot name one.
  defp check_name(name) do
    if String.valid?(name),
      do: :ok,
      else: {:error, Error.new(:not_found, "no export named #{inspect(name)}")}
  end

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

  defp typed_export(instance, name, struct, what) do
    case export(instance, name) do
      {:ok, %{__struct__: ^struct}} = ok -> ok
      {:ok, _other} -> {:error, Error.new(:not_found, "export #{inspect(name)} is not a #{what}")}
      {:error, _} = error -> error
    end
  end

  defimpl Inspect do
    def inspect(instance, _opts) do
      exports =
        instance
        |> Wasmbeam.Instance.exports()
        |> Enum.map_join(", ", fn {name, type} -> "#{name}: #{Wasmbeam.Types.format(type)}" end)

      "#Wasmbeam.Instance<#{exports}>"
    end
  end
end
