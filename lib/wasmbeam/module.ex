defmodule Wasmbeam.Module do
  @moduledoc """
  A compiled WebAssembly module. Compile once, instantiate many times:
  a module is immutable, may be shared between processes, and is freed when
  the last reference to it is gone.

  Compilation runs on a dirty CPU scheduler, so even a large module never
  blocks the normal schedulers.

  ## Examples

      iex> {:ok, module} = Wasmbeam.Module.compile(~S[(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))])
      iex> Wasmbeam.Module.exports(module)
      [{"add", {:func, [:i32, :i32], [:i32]}}]

      iex> {:error, error} = Wasmbeam.Module.compile(<<0, "asm", 1, 0, 0, 0, 99>>)
      iex> {error.kind, error.offset}
      {:validation, 9}
  """

  alias Wasmbeam.{Engine, Error, Native}

  @enforce_keys [:ref, :engine]
  defstruct [:ref, :engine]

  @type t :: %__MODULE__{ref: reference(), engine: Engine.t()}

  @doc """
  Compiles a wasm binary or WAT text. Text is recognised by the absence of
  the `\\0asm` header.

  Options:

    * `cache:` - `true` to go through the default `Wasmbeam.ModuleCache`
      (in memory, then on disk, then compile and store), the name of
      another cache, or `false` (the default) to always compile

  ## Examples

      iex> {:ok, a} = Wasmbeam.Module.compile(Wasmbeam.Engine.default(), "(module)", cache: true)
      iex> {:ok, b} = Wasmbeam.Module.compile(Wasmbeam.Engine.default(), "(module)", cache: true)
      iex> a == b
      true
  """
  @spec compile(Engine.t(), binary(), keyword()) :: {:ok, t()} | {:error, Error.t()}
  def compile(engine \\ Engine.default(), bytes, options \\ [])

  def compile(%Engine{} = engine, bytes, options) when is_binary(bytes) and is_list(options) do
    case Keyword.get(options, :cache, false) do
      false -> compile_now(engine, bytes)
      true -> Wasmbeam.ModuleCache.compile(engine, bytes)
      name -> Wasmbeam.ModuleCache.compile(engine, bytes, cache: name)
    end
  end

  def compile(%Engine{}, bytes, options) when is_binary(bytes),
    do: {:error, Error.new(:argument, "options must be a keyword list, got: #{inspect(options)}")}

  def compile(%Engine{}, other, _options), do: {:error, not_bytes(other)}

  def compile(other, _bytes, _options),
    do: {:error, Error.new(:argument, "expected a Wasmbeam.Engine, got: #{inspect(other)}")}

  defp compile_now(engine, bytes) do
    case Native.module_compile(engine.ref, bytes) do
      {:ok, ref} -> {:ok, %__MODULE__{ref: ref, engine: engine}}
      {:error, _} = error -> error
    end
  end

  defp not_bytes(other),
    do: Error.new(:argument, "expected wasm bytes or WAT text, got: #{inspect(other)}")

  @spec compile!(Engine.t(), binary(), keyword()) :: t()
  def compile!(engine \\ Engine.default(), bytes, options \\ []),
    do: compile(engine, bytes, options) |> Error.unwrap!()

  @doc "Reads a `.wasm` or `.wat` file and compiles it; options as for `compile/3`."
  @spec compile_file(Engine.t(), Path.t(), keyword()) :: {:ok, t()} | {:error, Error.t()}
  def compile_file(engine \\ Engine.default(), path, options \\ []) do
    with {:ok, bytes} <- read_file(path), do: compile(engine, bytes, options)
  end

  @doc false
  # Reads a module file, with the error every compile_file returns.
  @spec read_file(Path.t()) :: {:ok, binary()} | {:error, Error.t()}
  def read_file(path) do
    case File.read(path) do
      {:ok, bytes} ->
        {:ok, bytes}

      {:error, reason} ->
        {:error, Error.new(:argument, "cannot read #{path}: #{:file.format_error(reason)}")}
    end
  end

  @doc "Like `compile_file/2`, but raises `Wasmbeam.Error`."
  @spec compile_file!(Engine.t(), Path.t()) :: t()
  def compile_file!(engine \\ Engine.default(), path),
    do: compile_file(engine, path) |> Error.unwrap!()

  @doc """
  Checks that the bytes are a valid module for the engine, without
  compiling code.

      iex> Wasmbeam.Module.validate("(module)")
      :ok
  """
  @spec validate(Engine.t(), binary()) :: :ok | {:error, Error.t()}
  def validate(engine \\ Engine.default(), bytes)

  def validate(%Engine{}, bytes) when not is_binary(bytes), do: {:error, not_bytes(bytes)}

  def validate(%Engine{} = engine, bytes) do
    case Native.module_validate(engine.ref, bytes) do
      {:ok, :ok} -> :ok
      {:error, _} = error -> error
    end
  end

  @doc "The module's name from its name section, if any."
  @spec name(t()) :: String.t() | nil
  def name(%__MODULE__{ref: ref}), do: Native.module_name(ref)

  @doc """
  The imports the module needs, in order, as `{module, name, type}`
  (types as in `Wasmbeam.Types`).
  """
  @spec imports(t()) :: [{String.t(), String.t(), Wasmbeam.Types.extern_type()}]
  def imports(%__MODULE__{ref: ref}), do: Native.module_imports(ref)

  @doc "The module's exports, in order, as `{name, type}`."
  @spec exports(t()) :: [{String.t(), Wasmbeam.Types.extern_type()}]
  def exports(%__MODULE__{ref: ref}), do: Native.module_exports(ref)

  @doc """
  Serializes the compiled code, to skip compilation next time with
  `deserialize/2`. The result is native code for this engine's
  configuration, Wasmtime version and CPU, wrapped with a checksum.
  """
  @spec serialize(t()) :: {:ok, binary()} | {:error, Error.t()}
  def serialize(%__MODULE__{ref: ref}), do: Native.module_serialize(ref)

  @doc """
  Loads a module produced by `serialize/1`.

  ## Trust model

  A serialized module is native machine code that runs without
  re-validation. Wasmbeam refuses anything it did not write (no Wasmbeam
  header), anything damaged or truncated (BLAKE3 digest mismatch), and
  anything made by an engine with another configuration, Wasmtime version
  or target (Wasmtime's own check) — each with a `:deserialize` error.
  The digest detects accidents, not attackers: whoever can write the
  bytes you pass here can run native code in your VM. Only deserialize
  artifacts that you produced and stored where untrusted parties cannot
  write.
  """
  @spec deserialize(Engine.t(), binary()) :: {:ok, t()} | {:error, Error.t()}
  def deserialize(engine \\ Engine.default(), bytes)

  def deserialize(%Engine{}, bytes) when not is_binary(bytes), do: {:error, not_bytes(bytes)}

  def deserialize(%Engine{} = engine, bytes) do
    case Native.module_deserialize(engine.ref, bytes) do
      {:ok, ref} -> {:ok, %__MODULE__{ref: ref, engine: engine}}
      {:error, _} = error -> error
    end
  end

  defimpl Inspect do
    def inspect(module, _opts) do
      exports =
        module
        |> Wasmbeam.Module.exports()
        |> Enum.map_join(", ", fn {name, type} -> "#{name}: #{Wasmbeam.Types.format(type)}" end)

      "#Wasmbeam.Module<#{exports}>"
    end
  end
end
