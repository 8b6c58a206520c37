defmodule Wasmbeam.Component do
  @moduledoc """
  A compiled WebAssembly **component**: what `wit-bindgen`, `cargo component`,
  `componentize-py` and `jco` produce. Like a `Wasmbeam.Module` it is compiled
  once, immutable and shareable; `Wasmbeam.Component.Instance.new/3`
  instantiates it, with imports implemented in Elixir, and
  `Wasmbeam.Component.Instance.call/4` calls its exports with Elixir values
  checked against the component's WIT types.

  ## Examples

      iex> wat = ~S'''
      ...> (component
      ...>   (core module $m
      ...>     (func (export "add") (param i32 i32) (result i32)
      ...>       local.get 0 local.get 1 i32.add))
      ...>   (core instance $i (instantiate $m))
      ...>   (func (export "add") (param "a" u32) (param "b" u32) (result u32)
      ...>     (canon lift (core func $i "add"))))
      ...> '''
      iex> {:ok, component} = Wasmbeam.Component.compile(wat)
      iex> Wasmbeam.Component.exports(component)
      [{"add", {:func, "func(a: u32, b: u32) -> u32"}}]
      iex> {:ok, instance} = Wasmbeam.Component.Instance.new(component)
      iex> Wasmbeam.Component.Instance.call(instance, "add", [2, 3])
      {:ok, 5}

  ## Values

  | WIT | Elixir |
  |---|---|
  | `bool` | `true`, `false` |
  | `s8` .. `u64` | integers; out of range is a `:type` error that says so |
  | `f32`, `f64` | as for core modules: floats, `:infinity`, `:neg_infinity`, `:nan`, `{:nan, bits}` |
  | `char` | a one-character string (`"é"`); an integer code point is accepted |
  | `string` | a UTF-8 binary (invalid UTF-8 is a `:type` error) |
  | `list<u8>` | a binary (a list of bytes is accepted) |
  | `list<T>` | a list |
  | `tuple<A, B>` | a tuple `{a, b}` |
  | `record { user-id: u32 }` | a map with snake_case atom keys, `%{user_id: 1}` (string keys are accepted) |
  | `enum { low, high }` | an atom, `:low` |
  | `variant { none, some(u32) }` | `:none` or `{:some, 7}` |
  | `flags { read, write }` | a list of atoms, `[:read, :write]` (in declaration order) |
  | `option<T>` | `:none` or `{:some, value}`, so `option<option<T>>` round-trips |
  | `result<T, E>` | `{:ok, value}` or `{:error, value}`; a side without a type is the bare atom (`:ok`, `:error`) |
  | `own<R>`, `borrow<R>` | a `Wasmbeam.Component.Resource` |

  A function returns `{:ok, value}` when its type has a result, and `:ok`
  when it has none.

  **Resources.** A resource's functions are exported under the component
  model's names, in the interface that defines the resource:
  `"[constructor]counter"`, `"[method]counter.get"` (the handle is the
  first argument), `"[static]counter.with-start"`. A constructor returns a
  `Wasmbeam.Component.Resource`; see there for `own` and `borrow`, and for
  how handles are dropped. Resources a component imports are implemented
  in Elixir: see `Wasmbeam.Component.Instance`.

  **Names and atoms.** Record fields, enum, variant and flag cases become
  atoms (kebab-case as snake_case: `user-id` is `:user_id`). Atoms are made
  only when a component is compiled, from the component's own types, never
  from values at run time; a component may bring at most 10,000 names that
  are not atoms yet, and all components together at most 200,000 (an atom
  is never freed). A component beyond either bound does not compile (a
  `:limit` error). Interface and function names stay strings.
  """

  alias Wasmbeam.{Engine, Error, Native}

  @enforce_keys [:ref, :engine]
  defstruct [:ref, :engine]

  @type t :: %__MODULE__{ref: reference(), engine: Engine.t()}

  @typedoc "An import or export: a function with its WIT type, or an interface of them."
  @type item ::
          {String.t(),
           {:func, String.t()}
           | {:interface, [item()]}
           | {:resource, nil}
           | {:other, String.t()}}

  @doc """
  Compiles a component binary or component WAT text (recognised by the
  absence of the `\\0asm` header). A core module is refused with an
  `:argument` error that says so.

  The engine may be left out (`compile(bytes)`, `compile(bytes, options)`).
  Options: `cache:` as for `Wasmbeam.Module.compile/3`: `true` for the
  default `Wasmbeam.ModuleCache` (memory, then disk, then compile and
  store, sealed as modules are), a cache's name, or `false` (the default).

  ## Examples

      iex> {:ok, a} = Wasmbeam.Component.compile("(component)", cache: true)
      iex> {:ok, b} = Wasmbeam.Component.compile(Wasmbeam.Engine.default(), "(component)", cache: true)
      iex> a == b
      true
  """
  @spec compile(Engine.t(), binary(), keyword()) :: {:ok, t()} | {:error, Error.t()}
  def compile(engine \\ Engine.default(), bytes, options \\ [])

  # `compile(bytes, options)`: the default engine.
  def compile(bytes, options, []) when is_binary(bytes) and is_list(options),
    do: compile(Engine.default(), bytes, options)

  def compile(%Engine{} = engine, bytes, options) when is_binary(bytes) and is_list(options) do
    case Keyword.get(options, :cache, false) do
      false -> compile_now(engine, bytes)
      true -> cached(Wasmbeam.ModuleCache.compile(engine, bytes))
      name -> cached(Wasmbeam.ModuleCache.compile(engine, bytes, cache: name))
    end
  end

  def compile(%Engine{}, other, _options),
    do: {:error, Error.new(:argument, "a component must be a binary, got: #{inspect(other)}")}

  def compile(other, _bytes, _options),
    do: {:error, Error.new(:argument, "expected a %Wasmbeam.Engine{}, got: #{inspect(other)}")}

  defp compile_now(engine, bytes) do
    case Native.component_compile(engine.ref, bytes) do
      {:ok, ref} -> {:ok, %__MODULE__{ref: ref, engine: engine}}
      {:error, _} = error -> error
    end
  end

  defp cached({:ok, %__MODULE__{}} = ok), do: ok

  defp cached({:ok, %Wasmbeam.Module{}}),
    do:
      {:error,
       Error.new(
         :argument,
         "this is a core module, not a component: compile it with Wasmbeam.Module"
       )}

  defp cached({:error, _} = error), do: error

  @doc "Like `compile/3`, but raises `Wasmbeam.Error`."
  @spec compile!(Engine.t(), binary(), keyword()) :: t()
  def compile!(engine \\ Engine.default(), bytes, options \\ []),
    do: compile(engine, bytes, options) |> Error.unwrap!()

  @doc "Reads and compiles a component file (options as for `compile/3`)."
  @spec compile_file(Engine.t(), Path.t(), keyword()) :: {:ok, t()} | {:error, Error.t()}
  def compile_file(engine \\ Engine.default(), path, options \\ [])

  def compile_file(path, options, []) when is_binary(path) and is_list(options),
    do: compile_file(Engine.default(), path, options)

  def compile_file(engine, path, options) do
    case File.read(path) do
      {:ok, bytes} ->
        compile(engine, bytes, options)

      {:error, reason} ->
        {:error,
         Error.new(:argument, "cannot read #{inspect(path)}: #{:file.format_error(reason)}")}
    end
  end

  @doc "Like `compile_file/3`, but raises `Wasmbeam.Error`."
  @spec compile_file!(Engine.t(), Path.t(), keyword()) :: t()
  def compile_file!(engine \\ Engine.default(), path, options \\ []),
    do: compile_file(engine, path, options) |> Error.unwrap!()

  @doc """
  Whether `bytes` are a component rather than a core module: a binary
  whose header says layer 1, or text that begins with `(component`.

      iex> Wasmbeam.Component.component?("(component)")
      true
      iex> Wasmbeam.Component.component?("(module)")
      false
  """
  @spec component?(binary()) :: boolean()
  def component?(<<0, "asm", _version::little-16, 1::little-16, _::binary>>), do: true
  def component?(<<0, "asm", _::binary>>), do: false

  def component?(text) when is_binary(text),
    do: Regex.match?(~r/\A(?:\s|;;[^\n]*\n|\(;.*?;\))*\(\s*component\b/s, text)

  def component?(_), do: false

  @doc """
  Serializes the compiled component, to skip compilation next time with
  `deserialize/3`: native code for this engine's configuration, Wasmtime
  version and CPU, in the envelope `Wasmbeam.Module.serialize/2` uses
  (the same `:key` option: sealed with a keyed MAC, or with a plain
  checksum for `deserialize_unsafe/2`).

  ## Examples

      iex> key = :crypto.strong_rand_bytes(32)
      iex> component = Wasmbeam.Component.compile!("(component)")
      iex> {:ok, bytes} = Wasmbeam.Component.serialize(component, key: key)
      iex> {:ok, back} = Wasmbeam.Component.deserialize(bytes, key: key)
      iex> Wasmbeam.Component.exports(back)
      []
      iex> {:error, %Wasmbeam.Error{kind: :deserialize}} =
      ...>   Wasmbeam.Component.deserialize(bytes, key: :crypto.strong_rand_bytes(32))
  """
  @spec serialize(t(), keyword()) :: {:ok, binary()} | {:error, Error.t()}
  def serialize(%__MODULE__{ref: ref}, options \\ []) do
    with {:ok, key} <- Wasmbeam.Module.key_option(options, :optional),
         do: Native.component_serialize(ref, key)
  end

  @doc "Like `serialize/2`, but raises `Wasmbeam.Error`."
  @spec serialize!(t(), keyword()) :: binary()
  def serialize!(component, options \\ []), do: serialize(component, options) |> Error.unwrap!()

  @doc """
  Loads a component serialized with `serialize/2` under the same `:key`
  (required). Bytes that were not sealed with it, damaged bytes and a
  serialized core module are refused (`:deserialize`) before any of them
  is loaded as code.
  """
  @spec deserialize(Engine.t(), binary(), keyword()) :: {:ok, t()} | {:error, Error.t()}
  def deserialize(engine \\ Engine.default(), bytes, options)

  def deserialize(%Engine{} = engine, bytes, options) when is_binary(bytes) do
    with {:ok, key} <- Wasmbeam.Module.key_option(options, :required),
         do: loaded(engine, Native.component_deserialize(engine.ref, bytes, key))
  end

  def deserialize(%Engine{}, other, _options),
    do:
      {:error,
       Error.new(:argument, "serialized bytes must be a binary, got: #{inspect(other, limit: 5)}")}

  def deserialize(other, _bytes, _options),
    do:
      {:error,
       Error.new(:argument, "expected a %Wasmbeam.Engine{}, got: #{inspect(other, limit: 5)}")}

  @doc "Like `deserialize/3`, but raises `Wasmbeam.Error`."
  @spec deserialize!(Engine.t(), binary(), keyword()) :: t()
  def deserialize!(engine \\ Engine.default(), bytes, options),
    do: deserialize(engine, bytes, options) |> Error.unwrap!()

  @doc """
  Loads a component serialized without a key. Unsafe as
  `Wasmbeam.Module.deserialize_unsafe/2` is: the bytes run as native code,
  so they must come from a source you trust; the checksum only catches
  damage.
  """
  @spec deserialize_unsafe(Engine.t(), binary()) :: {:ok, t()} | {:error, Error.t()}
  def deserialize_unsafe(engine \\ Engine.default(), bytes)

  def deserialize_unsafe(%Engine{} = engine, bytes) when is_binary(bytes),
    do: loaded(engine, Native.component_deserialize(engine.ref, bytes, nil))

  def deserialize_unsafe(%Engine{}, other),
    do:
      {:error,
       Error.new(:argument, "serialized bytes must be a binary, got: #{inspect(other, limit: 5)}")}

  def deserialize_unsafe(other, _bytes),
    do:
      {:error,
       Error.new(:argument, "expected a %Wasmbeam.Engine{}, got: #{inspect(other, limit: 5)}")}

  @doc "Like `deserialize_unsafe/2`, but raises `Wasmbeam.Error` (and is as unsafe)."
  @spec deserialize_unsafe!(Engine.t(), binary()) :: t()
  def deserialize_unsafe!(engine \\ Engine.default(), bytes),
    do: deserialize_unsafe(engine, bytes) |> Error.unwrap!()

  defp loaded(engine, {:ok, ref}), do: {:ok, %__MODULE__{ref: ref, engine: engine}}
  defp loaded(_engine, {:error, _} = error), do: error

  @doc """
  What the component exports, in order: functions with their WIT type
  (`{"add", {:func, "func(a: u32, b: u32) -> u32"}}`) and interfaces with
  theirs (`{"my:pkg/shapes", {:interface, [{"area", {:func, ...}}]}}`).
  """
  @spec exports(t()) :: [item()]
  def exports(%__MODULE__{ref: ref}), do: ref |> described() |> elem(1)

  @doc "What the component imports, in the form of `exports/1`."
  @spec imports(t()) :: [item()]
  def imports(%__MODULE__{ref: ref}), do: ref |> described() |> elem(0)

  # A forged or persisted struct (its ref made elsewhere) raises the
  # clear error, as `Wasmbeam.Module.exports/1` does.
  defp described(ref) do
    case Native.component_describe(ref) do
      {:ok, both} -> both
      {:error, %Error{} = error} -> raise error
    end
  end

  defimpl Inspect do
    # At most `opts.limit` exports, as modules print theirs.
    def inspect(component, opts) do
      exports =
        try do
          Wasmbeam.Component.exports(component)
        rescue
          Wasmbeam.Error -> [{"(not a live component)", {:other, "forged or persisted"}}]
        end

      limit = if is_integer(opts.limit), do: opts.limit, else: length(exports)
      {shown, rest} = Enum.split(exports, limit)
      items = Enum.map(shown, fn {name, desc} -> name <> describe(desc) end)
      more = if rest == [], do: [], else: ["... (#{length(rest)} more)"]
      "#Wasmbeam.Component<" <> Enum.join(items ++ more, ", ") <> ">"
    end

    defp describe({:func, wit}), do: ": " <> wit
    defp describe({:interface, items}), do: " (interface, #{length(items)} items)"
    defp describe({:other, why}), do: " (#{why})"
    defp describe({kind, _}), do: " (#{kind})"
  end
end
