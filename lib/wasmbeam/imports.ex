defmodule Wasmbeam.Imports do
  @moduledoc """
  The import map given to `Wasmbeam.Instance.new/3`: for each import module
  name, either a map from import names to values, or a whole
  `%Wasmbeam.Instance{}` whose exports serve every import of that module
  (what the spec tests call `register`).

  An import value is one of:

    * an export of another instance in the same store: `%Wasmbeam.Func{}`,
      `%Wasmbeam.Memory{}`, `%Wasmbeam.Global{}`, `%Wasmbeam.Table{}`,
      `%Wasmbeam.Tag{}`
    * a new global: `{:global, type, value}` (immutable) or
      `{:global, type, value, :var}` (mutable)
    * a new memory: `{:memory, min_pages}` or `{:memory, min_pages, max_pages}`
      (a 32-bit memory: at most 65536 pages of 64 KiB)
    * a new table: `{:table, :funcref | :externref, min}` or
      `{:table, element, min, max}` (at most 2^32-1 elements)
    * a host function, `{:fn, params, results, handler}`, implemented in
      Elixir (see "Host functions" below)

  ## Host functions

  `handler` is either

    * a function taking a `Wasmbeam.Caller` and then one argument per
      parameter: it runs **in the process that made the call**, so it sees
      that process's logger metadata, process dictionary and test sandbox
      ownership; or
    * `{:process, server}` or `{:process, server, timeout: ms}`: the call is
      sent to a GenServer (pid, name, `{:global, _}` or `{:via, _, _}`) as
      `GenServer.call(server, {:wasmbeam_host_call, import_name, caller, args}, ms)`
      (default 5000 ms), whose reply is the results.

  The handler returns a list of results; a function with one result may
  return the bare value, and one with none may return `:ok` or `nil`.
  A handler that raises, throws, exits, does not answer in time, or answers
  with the wrong number or types of values makes the guest trap: the call
  returns a `:trap` error whose message names the import and the cause, and
  the instance stays usable.

  While the guest waits for a handler, it holds no scheduler thread: the
  guest's stack is parked on a fiber until the answer arrives.

  A call's `timeout:` holds across its host calls: a handler process is
  given at most the time the call has left (whatever its own `:timeout`),
  and a call whose handler answers after the deadline returns a `:timeout`
  error, not the late answer. An in-process handler is ordinary Elixir
  code running in the caller's process: nothing interrupts it, so a slow
  one makes the call return late, with `:timeout`.

      iex> wat = ~S[(module (import "env" "add" (func $add (param i64 i64) (result i64)))
      ...>   (func (export "sum3") (param i64 i64 i64) (result i64)
      ...>     (call $add (call $add (local.get 0) (local.get 1)) (local.get 2))))]
      iex> add = fn _caller, a, b -> a + b end
      iex> {:ok, instance} = Wasmbeam.load(wat, %{"env" => %{"add" => {:fn, [:i64, :i64], [:i64], add}}})
      iex> Wasmbeam.Instance.call(instance, "sum3", [1, 2, 3])
      {:ok, [6]}

  ## Names, and what is not imported

  Module and import names are strings, as in the module:
  `%{"env" => %{"log" => ...}}`. A map with atom keys (`%{env: %{log: ...}}`,
  as Wasmex writes them) does not match them: the `:link` error for the
  missing import says so.

  Entries that the module does not import are ignored, silently: one map
  can serve several modules (a host offering the same functions to every
  plugin, each importing what it uses), and a pool or a `:fresh` policy
  would otherwise repeat a warning at every instantiation.
  `Wasmbeam.Module.imports/1` lists what a module does import.

      iex> module = Wasmbeam.Module.compile!(~S[(module (import "env" "f" (func (param i32))))])
      iex> f = {:fn, [:i32], [], fn _caller, _x -> :ok end}
      iex> {:ok, _} = Wasmbeam.Instance.new(module, %{"env" => %{"f" => f, "unused" => f}, "other" => %{}})
      iex> Wasmbeam.Module.imports(module)
      [{"env", "f", {:func, [:i32], []}}]
      iex> {:error, error} = Wasmbeam.Instance.new(module, %{env: %{f: f}})
      iex> error.message
      ~s[missing import "env" "f" (func (i32) -> ()); the import map has :env where the module name "env" is needed (names are strings: %{"env" => %{"f" => ...}})]

  ## Examples

      iex> module = Wasmbeam.Module.compile!(~S[(module (import "env" "base" (global i32)) (func (export "get") (result i32) global.get 0))])
      iex> instance = Wasmbeam.Instance.new!(module, %{"env" => %{"base" => {:global, :i32, 41}}})
      iex> Wasmbeam.Instance.call(instance, "get", [])
      {:ok, [41]}

      iex> module = Wasmbeam.Module.compile!(~S[(module (import "env" "f" (func (param i32))))])
      iex> {:error, error} = Wasmbeam.Instance.new(module, %{})
      iex> {error.kind, error.message}
      {:link, "missing import \\"env\\" \\"f\\" (func (i32) -> ())"}
  """

  alias Wasmbeam.{Error, Func, Global, HostCall, Instance, Memory, Module, Table, Tag}

  @type value ::
          Func.t()
          | Memory.t()
          | Global.t()
          | Table.t()
          | Tag.t()
          | {:global, Wasmbeam.Types.value_type(), Wasmbeam.Types.value()}
          | {:global, Wasmbeam.Types.value_type(), Wasmbeam.Types.value(), :var | :const}
          | {:memory, non_neg_integer()}
          | {:memory, non_neg_integer(), non_neg_integer() | nil}
          | {:table, :funcref | :externref, non_neg_integer()}
          | {:table, :funcref | :externref, non_neg_integer(), non_neg_integer() | nil}
          | {:fn, [Wasmbeam.Types.value_type()], [Wasmbeam.Types.value_type()], function()}

  @type t :: %{optional(String.t()) => %{optional(String.t()) => value()} | Instance.t()}

  @wasi_preview1 "wasi_snapshot_preview1"
  @max_memory_pages 65_536
  @max_table_elements 0xFFFF_FFFF

  @doc false
  # Resolves the map into the list the NIF takes, in the module's import
  # order. With `wasi: true`, WASI preview 1 imports that the map does not
  # name come from the store's WASI context (the map can override any one).
  @spec resolve(Module.t(), t(), keyword()) :: {:ok, [tuple()]} | {:error, Error.t()}
  def resolve(module, imports, options \\ [])

  def resolve(%Module{} = module, imports, options) when is_map(imports) do
    case Wasmbeam.Native.module_imports(module.ref) do
      {:error, _} = error -> error
      needed -> resolve_all(needed, imports, Keyword.get(options, :wasi, false))
    end
  end

  def resolve(%Module{}, other, _options),
    do: {:error, Error.new(:argument, "imports must be a map, got: #{inspect(other)}")}

  defp resolve_all(needed, imports, wasi?) do
    needed
    |> Enum.reduce_while({:ok, []}, fn {mod, name, type}, {:ok, acc} ->
      case resolve_one(imports, mod, name, type, wasi?) do
        {:ok, item} -> {:cont, {:ok, [item | acc]}}
        {:error, _} = error -> {:halt, error}
      end
    end)
    |> case do
      {:ok, items} -> {:ok, Enum.reverse(items)}
      error -> error
    end
  end

  defp resolve_one(imports, mod, name, type, wasi?) do
    case lookup(imports, mod, name) do
      {:ok, value} ->
        to_native(value, mod, name, type)

      :error when wasi? and mod == @wasi_preview1 ->
        {:ok, {:wasi, mod, name}}

      :error when mod == @wasi_preview1 ->
        link_error(
          "missing import #{inspect(mod)} #{inspect(name)}: the module uses WASI; " <>
            "run it with Wasmbeam.Wasi.run/2 or pass wasi: options to Wasmbeam.Instance.new/3"
        )

      :error ->
        link_error(
          "missing import #{inspect(mod)} #{inspect(name)} (#{describe(type)})" <>
            atom_keys_hint(imports, mod, name)
        )

      {:error, _} = error ->
        error
    end
  end

  # Wasmex's import maps have atom keys (`%{env: %{log: ...}}`); here
  # module and import names are strings, as in the module itself.
  defp atom_keys_hint(imports, mod, name) do
    module_atom = atom_named(imports, mod)
    name_atom = atom_named(Map.get(imports, mod) || Map.get(imports, module_atom), name)
    strings = "(names are strings: %{#{inspect(mod)} => %{#{inspect(name)} => ...}})"

    cond do
      module_atom != nil ->
        "; the import map has #{inspect(module_atom)} where the module name #{inspect(mod)} " <>
          "is needed #{strings}"

      name_atom != nil ->
        "; the import map has #{inspect(name_atom)} where the import name #{inspect(name)} " <>
          "is needed #{strings}"

      true ->
        ""
    end
  end

  defp atom_named(map, string) when is_map(map) and not is_struct(map),
    do: Enum.find(Map.keys(map), &(is_atom(&1) and Atom.to_string(&1) == string))

  defp atom_named(_other, _string), do: nil

  defp lookup(imports, mod, name) do
    case Map.fetch(imports, mod) do
      {:ok, %Instance{} = instance} ->
        case Instance.export(instance, name) do
          {:ok, export} -> {:ok, export}
          {:error, %Error{kind: :not_found}} -> :error
          {:error, _} = error -> error
        end

      {:ok, names} when is_map(names) ->
        Map.fetch(names, name)

      _ ->
        :error
    end
  end

  defp to_native(%Func{ref: ref}, _, _, {:func, _, _}), do: {:ok, {:func, ref}}
  defp to_native(%Memory{ref: ref}, _, _, {:memory, _}), do: {:ok, {:memory, ref}}
  defp to_native(%Global{ref: ref}, _, _, {:global, _, _}), do: {:ok, {:global, ref}}
  defp to_native(%Table{ref: ref}, _, _, {:table, _}), do: {:ok, {:table, ref}}
  defp to_native(%Tag{ref: ref}, _, _, {:tag, _}), do: {:ok, {:tag, ref}}

  defp to_native({:global, type, value}, m, n, t),
    do: to_native({:global, type, value, :const}, m, n, t)

  defp to_native({:global, type, value, mutability}, _, _, {:global, _, _})
       when mutability in [:const, :var],
       do: {:ok, {:define_global, type, mutability == :var, value}}

  defp to_native({:memory, min}, m, n, t), do: to_native({:memory, min, nil}, m, n, t)

  # Defined memories are 32-bit: at most 65536 pages of 64 KiB (4 GiB).
  defp to_native({:memory, min, max}, mod, name, {:memory, _})
       when (is_integer(min) and min > @max_memory_pages) or
              (is_integer(max) and max > @max_memory_pages) do
    pages = if is_integer(min) and min > @max_memory_pages, do: min, else: max
    too_large(mod, name, "a memory of #{pages} pages", @max_memory_pages, "pages")
  end

  defp to_native({:memory, min, max}, _, _, {:memory, _})
       when is_integer(min) and min >= 0 and (is_nil(max) or (is_integer(max) and max >= min)),
       do: {:ok, {:define_memory, min, max}}

  defp to_native({:table, elem, min}, m, n, t), do: to_native({:table, elem, min, nil}, m, n, t)

  # Defined tables are 32-bit: at most 2^32-1 elements.
  defp to_native({:table, _elem, min, max}, mod, name, {:table, _})
       when (is_integer(min) and min > @max_table_elements) or
              (is_integer(max) and max > @max_table_elements) do
    elements = if is_integer(min) and min > @max_table_elements, do: min, else: max

    too_large(
      mod,
      name,
      "a table of #{elements} elements",
      @max_table_elements,
      "elements"
    )
  end

  defp to_native({:table, elem, min, max}, _, _, {:table, _})
       when elem in [:funcref, :externref] and is_integer(min) and min >= 0 and
              (is_nil(max) or (is_integer(max) and max >= min)),
       do: {:ok, {:define_table, elem, min, max}}

  defp to_native({:fn, params, results, handler}, mod, name, {:func, _, _}) do
    import_name = "#{mod}.#{name}"

    with :ok <- check_types(params, import_name),
         :ok <- check_types(results, import_name),
         {:ok, spec} <- HostCall.handler(import_name, params, results, handler) do
      {:ok, {:define_func, import_name, params, results, spec}}
    else
      {:error, %Error{}} = error -> error
      {:error, message} -> link_error("import #{inspect(mod)} #{inspect(name)}: #{message}")
    end
  end

  defp to_native(value, mod, name, type) do
    link_error(
      "import #{inspect(mod)} #{inspect(name)} needs a #{describe(type)}, got: #{inspect(value)}"
    )
  end

  defp too_large(mod, name, what, most, unit) do
    {:error,
     Error.new(
       :argument,
       "import #{inspect(mod)} #{inspect(name)}: #{what} is larger than a 32-bit one can be " <>
         "(at most #{most} #{unit})"
     )}
  end

  @value_types [:i32, :i64, :f32, :f64, :v128, :funcref, :externref]

  defp check_types(types, import_name) when is_list(types) do
    case Enum.reject(types, &(&1 in @value_types)) do
      [] -> :ok
      bad -> link_error("host function #{import_name}: unknown value type(s) #{inspect(bad)}")
    end
  end

  defp check_types(other, import_name),
    do: link_error("host function #{import_name}: types must be a list, got: #{inspect(other)}")

  defp describe({:func, params, results}),
    do: "func (#{Enum.join(params, ", ")}) -> (#{Enum.join(results, ", ")})"

  defp describe(type), do: Wasmbeam.Types.format(type)

  defp link_error(message), do: {:error, Error.new(:link, message)}
end
