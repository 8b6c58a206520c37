defmodule Wasmbeam.Component.Instance do
  @moduledoc """
  A `Wasmbeam.Component` instantiated into a store, and its calls.

  Calls run like calls of a core module's exports: time-sliced on the
  calling process (a guest never blocks a scheduler), with `timeout:`,
  `fuel:`, `wait:` and store limits, cancelled when the caller dies, and
  with host functions run in the calling process or a handler process.

  ## Imports

  Imports are keyed by interface and function name, as the component's
  WIT names them, or by function name for a function imported at the top
  level:

      %{
        "my:pkg/logger@0.1.0" => %{"log" => fn _caller, message -> IO.puts(message) end},
        "now" => fn _caller -> System.os_time(:millisecond) end
      }

  A handler is a function of the caller plus one argument per WIT
  parameter, or `{:process, server}` / `{:process, server, timeout: ms}`
  (the server gets `{:wasmbeam_host_call, name, caller, args}` as a
  `GenServer.call/3`). Types come from the component: a handler returns
  its result as a value (see `Wasmbeam.Component` for the mapping), and
  anything for a function without a result. A handler that raises,
  exits, times out or returns a value that does not fit traps the call
  with the import's name in the message; the instance stays usable. A
  component host function has no way back into its guest (components
  share no memory with their host and may not be re-entered): its caller
  answers only `Wasmbeam.Caller.fuel/1`.

  Naming a function the component does not import is a `:link` error; an
  import the map leaves out is a `:link` error at instantiation.

  ## Resources implemented in Elixir

  A resource the component imports is bound to `:resource`, or to
  `{:resource, drop}` where `drop` is a handler of the caller and the
  resource's state, run when the guest (or Elixir, through a handle) drops
  it. The state is any term: the handler of a function whose result is
  `own<R>` (the constructor, `"[constructor]blob"`) returns it, and
  handlers whose parameters are `borrow<R>` or `own<R>` (methods,
  `"[method]blob.size"`) get it:

      %{
        "my:pkg/blobs" => %{
          "blob" => {:resource, fn _caller, {:blob, _bytes} -> :ok end},
          "[constructor]blob" => fn _caller, bytes -> {:blob, bytes} end,
          "[method]blob.size" => fn _caller, {:blob, bytes} -> byte_size(bytes) end
        }
      }

  A state is kept with the store (copied in, as a message would be) until
  the resource is dropped; one handed to a handler as `own<R>` is the
  handler's from then on (its drop handler is not run). Resources at the
  top level of a parameter list or result are supported; resources the
  host defines nested inside records, lists or variants are not yet.
  """

  alias Wasmbeam.{CallOptions, Component, Driver, Error, HostCall, Native, Store}

  @enforce_keys [:ref, :store, :component]
  defstruct [:ref, :store, :component]

  @type t :: %__MODULE__{ref: reference(), store: Store.t(), component: Component.t()}

  @typedoc "An export: `\"name\"`, `{\"my:pkg/iface\", \"name\"}` or `\"my:pkg/iface#name\"`."
  @type export_name :: String.t() | {String.t(), String.t()}

  @doc """
  Instantiates `component` with `imports` (see above).

  Options: `store:` (an existing `Wasmbeam.Store` of the component's
  engine) or the limits of a new one (`memory_size:`, `table_elements:`,
  `instances:`, `tables:`, `memories:`, `fuel:`), `wasi:` (the options of
  `Wasmbeam.Wasi.Options`: the component's `wasi:` imports are then
  served by WASI preview 2, granting exactly what they list; see
  `Wasmbeam.Wasi`), and the call options of `Wasmbeam.Instance.call/4`
  for the instantiation itself.
  """
  @spec new(Component.t(), map(), keyword()) :: {:ok, t()} | {:error, Error.t()}
  def new(component, imports \\ %{}, options \\ [])

  def new(%Component{} = component, imports, options) when is_map(imports) and is_list(options) do
    with {:ok, bindings} <- bindings(component, imports) do
      wasi? = Keyword.get(options, :wasi) != nil

      instantiate(component, options, fn store ->
        &Native.component_instantiate(store.ref, component.ref, bindings, wasi?, &1)
      end)
    end
  end

  def new(%Component{}, imports, options) when is_list(options),
    do: {:error, Error.new(:argument, "imports must be a map, got: #{inspect(imports)}")}

  def new(other, _imports, _options),
    do: {:error, Error.new(:argument, "expected a %Wasmbeam.Component{}, got: #{inspect(other)}")}

  @doc "Like `new/3`, but raises `Wasmbeam.Error`."
  @spec new!(Component.t(), map(), keyword()) :: t()
  def new!(component, imports \\ %{}, options \\ []),
    do: new(component, imports, options) |> Error.unwrap!()

  @doc false
  # Used by `Wasmbeam.Instance.new/3` with a `Wasmbeam.LinkedModule` of a
  # component: only the instance is created.
  @spec new_linked(Wasmbeam.LinkedModule.t(), keyword()) :: {:ok, t()} | {:error, Error.t()}
  def new_linked(%Wasmbeam.LinkedModule{ref: ref, module: %Component{} = component}, options) do
    instantiate(component, options, fn store ->
      &Native.component_linked_instantiate(store.ref, ref, &1)
    end)
  end

  defp instantiate(component, options, starter) do
    {store_option, options} = Keyword.pop(options, :store)
    {wasi_options, options} = Keyword.pop(options, :wasi)
    {store_options, call_options} = Keyword.split(options, Store.limit_keys())

    with {:ok, store} <- Wasmbeam.Instance.store_for(store_option, component, store_options),
         :ok <- Wasmbeam.Wasi.attach(store, wasi_options),
         {:ok, native} <- CallOptions.to_native(call_options),
         {:ok, ref} <- Driver.run(store.ref, native, starter.(store)) do
      {:ok, %__MODULE__{ref: ref, store: store, component: component}}
    end
  end

  @doc false
  # `[{interface | nil, name, handler}]` for the NIF, each handler checked
  # against the arity the component gives its import (also used to link a
  # component once, by `Wasmbeam.LinkedModule.new/3`).
  @spec bindings(Component.t(), map()) :: {:ok, list()} | {:error, Error.t()}
  def bindings(_component, imports) when not is_map(imports),
    do: {:error, Error.new(:argument, "imports must be a map, got: #{inspect(imports)}")}

  def bindings(component, imports) do
    case Native.component_import_funcs(component.ref) do
      {:ok, items} ->
        items
        |> Map.new(fn {interface, name, kind} -> {{interface, name}, kind} end)
        |> bind_all(imports)

      {:error, _} = error ->
        error
    end
  end

  defp bind_all(kinds, imports) do
    imports
    |> Enum.flat_map(fn
      {interface, %{} = entries} when is_binary(interface) ->
        Enum.map(entries, fn {name, handler} -> {interface, name, handler} end)

      {name, handler} ->
        [{nil, name, handler}]
    end)
    |> Enum.reduce_while({:ok, []}, fn {interface, name, handler}, {:ok, acc} ->
      case binding(kinds, interface, name, handler) do
        {:ok, b} -> {:cont, {:ok, [b | acc]}}
        {:error, _} = error -> {:halt, error}
      end
    end)
    |> case do
      {:ok, list} -> {:ok, Enum.reverse(list)}
      error -> error
    end
  end

  defp binding(_kinds, interface, name, _handler)
       when not is_binary(name) or not (is_binary(interface) or is_nil(interface)) do
    {:error,
     Error.new(
       :argument,
       "component imports are keyed by strings (interface, then function name), got: " <>
         inspect(if interface, do: {interface, name}, else: name)
     )}
  end

  defp binding(kinds, interface, name, handler) do
    path = if interface, do: interface <> "#" <> name, else: name

    case {Map.fetch(kinds, {interface, name}), handler} do
      {{:ok, :resource}, :resource} ->
        binding(kinds, interface, name, {:resource, fn _caller, _state -> :ok end})

      {{:ok, :resource}, {:resource, drop}} ->
        case HostCall.component_handler(path, 1, drop) do
          {:ok, term} -> {:ok, {interface, name, {:resource, term}}}
          {:error, message} -> {:error, Error.new(:argument, "resource #{path}: " <> message)}
        end

      {{:ok, :resource}, other} ->
        {:error,
         Error.new(
           :argument,
           "resource #{path} is implemented by :resource or {:resource, drop_handler}, got: " <>
             inspect(other)
         )}

      {{:ok, n}, _} ->
        case HostCall.component_handler(path, n, handler) do
          {:ok, term} -> {:ok, {interface, name, term}}
          {:error, message} -> {:error, Error.new(:argument, "import #{path}: " <> message)}
        end

      {:error, _} ->
        {:error, Error.new(:link, "the component imports no function or resource #{path}")}
    end
  end

  @doc """
  Calls an exported function with `args` (one value per WIT parameter):
  `{:ok, result}` for a function with a result, `:ok` for one without.
  Options as for `Wasmbeam.Instance.call/4`.
  """
  @spec call(t(), export_name(), list(), CallOptions.t()) ::
          {:ok, term()} | :ok | {:error, Error.t()}
  def call(instance, name, args, options \\ [])

  def call(%__MODULE__{ref: ref, store: store}, name, args, options) do
    with {:ok, {interface, fname}} <- split_name(name),
         {:ok, native} <- CallOptions.to_native(options) do
      Driver.run(store.ref, native, &start_call(ref, store.ref, interface, fname, args, &1))
    end
  end

  def call(other, _name, _args, _options),
    do:
      {:error,
       Error.new(
         :argument,
         "expected a %Wasmbeam.Component.Instance{}, got: #{inspect(other)}"
       )}

  @doc "Like `call/4`, but raises `Wasmbeam.Error`; returns the result (or `:ok`)."
  @spec call!(t(), export_name(), list(), CallOptions.t()) :: term()
  def call!(instance, name, args, options \\ []) do
    case call(instance, name, args, options) do
      {:ok, value} -> value
      :ok -> :ok
      {:error, error} -> raise error
    end
  end

  @doc false
  # Starts a call; arguments too large to decode on a normal scheduler
  # come back as `:dirty` and are decoded on a dirty one.
  @spec start_call(reference(), reference(), String.t() | nil, String.t(), list(), map()) ::
          term()
  def start_call(ref, store_ref, interface, name, args, native) do
    case Native.component_call(ref, store_ref, interface, name, args, native) do
      :dirty -> Native.component_call_dirty(ref, store_ref, interface, name, args, native)
      step -> step
    end
  end

  @doc false
  @spec split_name(term()) :: {:ok, {String.t() | nil, String.t()}} | {:error, Error.t()}
  def split_name({interface, name}) when is_binary(interface) and is_binary(name),
    do: checked({interface, name})

  def split_name(name) when is_binary(name) do
    case :binary.split(name, "#") do
      [interface, fname] -> checked({interface, fname})
      [fname] -> checked({nil, fname})
    end
  end

  def split_name(other),
    do:
      {:error,
       Error.new(
         :argument,
         "an export is named by a string (\"name\" or \"my:pkg/iface#name\") or " <>
           "{interface, name}, got: #{inspect(other)}"
       )}

  defp checked({interface, name} = path) do
    if (interface == nil or String.valid?(interface)) and String.valid?(name),
      do: {:ok, path},
      else: {:error, Error.new(:argument, "export names must be UTF-8, got: #{inspect(path)}")}
  end

  defimpl Inspect do
    def inspect(instance, opts) do
      Inspect.Algebra.concat([
        "#Wasmbeam.Component.Instance<",
        Inspect.Algebra.to_doc(instance.component, opts),
        ">"
      ])
    end
  end
end
