defmodule Wasmbeam.Module do
  @moduledoc """
  A compiled WebAssembly module. Compile once, instantiate many times:
  a module is immutable, may be shared between processes, and is freed when
  the last reference to it is gone.

  Compilation runs on a dirty CPU scheduler, so even a large module never
  blocks the normal schedulers; a module over 128 KiB compiles on
  Wasmbeam's own compile threads, so that it does not hold a dirty
  scheduler either for the seconds a large one takes.

  ## Logging

  A compile on the compile threads (a module over 128 KiB) is logged at
  `:debug` level, when it starts and when it ends, with the module's size
  and the time it took, so that a developer who waits seconds in `iex`
  sees why:

      [debug] Wasmbeam.Module: compiling 19.6 MiB on a compile thread
      [debug] Wasmbeam.Module: compiled 19.6 MiB in 5412 ms

  Nothing is logged at `:info` level or above (the usual level in
  production), nor for smaller modules, nor for a module loaded from
  `Wasmbeam.ModuleCache`. To silence the lines at debug level,
  `Logger.put_module_level(Wasmbeam.Module, :info)`. `[:wasmbeam, :module,
  :compile]` telemetry spans cover every compile, whatever its size (see
  `Wasmbeam.Telemetry`).

  ## Examples

      iex> {:ok, module} = Wasmbeam.Module.compile(~S[(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))])
      iex> Wasmbeam.Module.exports(module)
      [{"add", {:func, [:i32, :i32], [:i32]}}]

      iex> {:error, error} = Wasmbeam.Module.compile(<<0, "asm", 1, 0, 0, 0, 99>>)
      iex> {error.kind, error.offset}
      {:validation, 9}
  """

  require Logger

  alias Wasmbeam.{Engine, Error, Native}

  @enforce_keys [:ref, :engine]
  defstruct [:ref, :engine]

  @type t :: %__MODULE__{ref: reference(), engine: Engine.t()}

  @doc """
  Compiles a wasm binary or WAT text. Text is recognised by the absence of
  the `\\0asm` header.

  The engine may be left out (`compile(bytes)`, `compile(bytes, options)`):
  the default engine is used.

  Options:

    * `cache:` - `true` to go through the default `Wasmbeam.ModuleCache`
      (in memory, then on disk, then compile and store), the name of
      another cache, or `false` (the default) to always compile

  ## Examples

      iex> {:ok, a} = Wasmbeam.Module.compile(Wasmbeam.Engine.default(), "(module)", cache: true)
      iex> {:ok, b} = Wasmbeam.Module.compile("(module)", cache: true)
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

  def compile(%Engine{}, bytes, options) when is_binary(bytes),
    do: {:error, Error.new(:argument, "options must be a keyword list, got: #{inspect(options)}")}

  def compile(%Engine{}, other, _options), do: {:error, not_bytes(other)}

  def compile(other, _bytes, _options),
    do: {:error, Error.new(:argument, "expected a Wasmbeam.Engine, got: #{inspect(other)}")}

  # The cache holds components too.
  defp cached({:ok, %Wasmbeam.Component{}}),
    do:
      {:error,
       Error.new(
         :argument,
         "this is a component, not a core module: compile it with Wasmbeam.Component"
       )}

  defp cached(result), do: result

  # Modules up to this size compile on a dirty scheduler (a few ms at
  # most); larger ones on Wasmbeam's compile threads, so that they never
  # hold one of the VM's dirty schedulers (others need them: hashing,
  # deserializing, large copies) for the seconds a big module can take.
  @inline_compile_limit 128 * 1024

  defp compile_now(engine, bytes) do
    where =
      if byte_size(bytes) <= @inline_compile_limit, do: :dirty_scheduler, else: :compile_thread

    metadata = %{engine: engine, byte_size: byte_size(bytes), where: where}

    Wasmbeam.Telemetry.span(
      [:wasmbeam, :module, :compile],
      metadata,
      fn -> compile_on(where, engine, bytes) end,
      &compiled_metadata/1
    )
  end

  defp compiled_metadata({:ok, module}), do: %{module: module, name: name(module), error: nil}
  defp compiled_metadata({:error, error}), do: %{module: nil, name: nil, error: error}

  defp compile_on(:dirty_scheduler, engine, bytes),
    do: loaded(engine, Native.module_compile(engine.ref, bytes))

  defp compile_on(:compile_thread, engine, bytes) do
    size = "#{:erlang.float_to_binary(byte_size(bytes) / (1024 * 1024), decimals: 1)} MiB"
    Logger.debug("Wasmbeam.Module: compiling #{size} on a compile thread")
    started = System.monotonic_time(:millisecond)
    {:compiling, id} = Native.module_compile_start(engine.ref, bytes)

    # The compile threads always answer; a caller that dies meanwhile
    # makes a queued compile be dropped unrun.
    result =
      receive do
        {:wasmbeam_compiled, ^id, result} -> loaded(engine, result)
      end

    Logger.debug(fn ->
      took = System.monotonic_time(:millisecond) - started

      case result do
        {:ok, module} ->
          case name(module) do
            nil -> "Wasmbeam.Module: compiled #{size} in #{took} ms"
            name -> "Wasmbeam.Module: compiled #{inspect(name)} (#{size}) in #{took} ms"
          end

        {:error, error} ->
          "Wasmbeam.Module: compiling #{size} failed after #{took} ms: #{Exception.message(error)}"
      end
    end)

    result
  end

  defp loaded(engine, {:ok, ref}), do: {:ok, %__MODULE__{ref: ref, engine: engine}}
  defp loaded(_engine, {:error, _} = error), do: error

  defp not_bytes(other),
    do: Error.new(:argument, "expected wasm bytes or WAT text, got: #{inspect(other)}")

  @doc """
  Like `compile/3`, but returns the module or raises `Wasmbeam.Error`.

      iex> Wasmbeam.Module.compile!("(module (func (export \\"f\\")))")
      #Wasmbeam.Module<f: func () -> ()>
  """
  @spec compile!(Engine.t(), binary(), keyword()) :: t()
  def compile!(engine \\ Engine.default(), bytes, options \\ []),
    do: compile(engine, bytes, options) |> Error.unwrap!()

  @doc """
  Reads a `.wasm` or `.wat` file and compiles it; options as for
  `compile/3` (`cache: true` to compile through `Wasmbeam.ModuleCache`).
  The engine may be left out.

      iex> {:ok, module} = Wasmbeam.Module.compile_file("examples/fib.wat", cache: true)
      iex> Wasmbeam.Module.exports(module)
      [{"fib", {:func, [:i64], [:i64]}}]
  """
  @spec compile_file(Engine.t(), Path.t(), keyword()) :: {:ok, t()} | {:error, Error.t()}
  def compile_file(engine \\ Engine.default(), path, options \\ [])

  # `compile_file(path, options)`: the default engine.
  def compile_file(path, options, []) when is_binary(path) and is_list(options),
    do: compile_file(Engine.default(), path, options)

  def compile_file(engine, path, options) do
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

  @doc "Like `compile_file/3` (options included), but raises `Wasmbeam.Error`."
  @spec compile_file!(Engine.t(), Path.t(), keyword()) :: t()
  def compile_file!(engine \\ Engine.default(), path, options \\ []),
    do: compile_file(engine, path, options) |> Error.unwrap!()

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
  def name(%__MODULE__{ref: ref}), do: ref |> Native.module_name() |> checked()

  @doc """
  The imports the module needs, in order, as `{module, name, type}`
  (types as in `Wasmbeam.Types`).
  """
  @spec imports(t()) :: [{String.t(), String.t(), Wasmbeam.Types.extern_type()}]
  def imports(%__MODULE__{ref: ref}), do: ref |> Native.module_imports() |> listed()

  @doc "The module's exports, in order, as `{name, type}`."
  @spec exports(t()) :: [{String.t(), Wasmbeam.Types.extern_type()}]
  def exports(%__MODULE__{ref: ref}), do: ref |> Native.module_exports() |> listed()

  # A handle whose reference Wasmbeam did not make answers an error: say
  # so, rather than return something that is not a list.
  defp listed({:error, %Error{} = error}), do: raise(error)
  defp listed(list), do: list

  defp checked({:error, %Error{} = error}), do: raise(error)
  defp checked(name), do: name

  @doc """
  Serializes the compiled code, to skip compilation next time with
  `deserialize/3`. The result is native code for this engine's
  configuration, Wasmtime version and CPU.

  Options:

    * `:key` - a 32-byte binary the application keeps secret (e.g. made
      once with `:crypto.strong_rand_bytes(32)` and kept in its
      configuration). The bytes are sealed with a keyed BLAKE3 MAC under
      it, and only `deserialize/3` with the same key loads them. Without a
      key the bytes carry a plain checksum, and only `deserialize_unsafe/2`
      loads them.

  ## Examples

      iex> key = :crypto.strong_rand_bytes(32)
      iex> module = Wasmbeam.Module.compile!(~S[(module (func (export "f")))])
      iex> {:ok, bytes} = Wasmbeam.Module.serialize(module, key: key)
      iex> {:ok, back} = Wasmbeam.Module.deserialize(bytes, key: key)
      iex> Wasmbeam.Module.exports(back)
      [{"f", {:func, [], []}}]
  """
  @spec serialize(t(), keyword()) :: {:ok, binary()} | {:error, Error.t()}
  def serialize(%__MODULE__{ref: ref}, options \\ []) do
    with {:ok, key} <- key_option(options, :optional) do
      Native.module_serialize(ref, key)
    end
  end

  @doc "Like `serialize/2`, but raises `Wasmbeam.Error`."
  @spec serialize!(t(), keyword()) :: binary()
  def serialize!(module, options \\ []), do: serialize(module, options) |> Error.unwrap!()

  @doc """
  Loads a module that `serialize/2` sealed with `key: key`.

  ## Trust model

  A serialized module is native machine code that runs without
  re-validation: whoever can choose the bytes loaded here can run any
  code in the VM. So this function loads only bytes sealed with a key the
  application holds (a keyed BLAKE3 MAC, checked before Wasmtime reads a
  byte): anything written or changed by someone without the key, damaged
  or truncated, or made without a key is refused with a `:deserialize`
  error, as is an artifact of an engine with another configuration,
  Wasmtime version or target (Wasmtime's own check). Keep the key where
  untrusted parties cannot read it. `Wasmbeam.ModuleCache` seals its files
  the same way with a key of its own.

  Options: `:key` (required), the 32-byte key given to `serialize/2`.
  """
  @spec deserialize(Engine.t(), binary(), keyword()) :: {:ok, t()} | {:error, Error.t()}
  def deserialize(engine \\ Engine.default(), bytes, options)

  # `deserialize(engine, bytes)` without options reads as (bytes, options).
  def deserialize(%Engine{}, %Engine{}, bytes) when is_binary(bytes),
    do: key_option([], :required)

  def deserialize(%Engine{}, bytes, _options) when not is_binary(bytes),
    do: {:error, not_bytes(bytes)}

  def deserialize(%Engine{} = engine, bytes, options) do
    with {:ok, key} <- key_option(options, :required) do
      wrap_loaded(engine, Native.module_deserialize(engine.ref, bytes, key))
    end
  end

  def deserialize(engine, _bytes, _options), do: {:error, not_an_engine(engine)}

  @doc "Like `deserialize/3`, but raises `Wasmbeam.Error`."
  @spec deserialize!(Engine.t(), binary(), keyword()) :: t()
  def deserialize!(engine \\ Engine.default(), bytes, options),
    do: deserialize(engine, bytes, options) |> Error.unwrap!()

  @doc """
  Loads serialized bytes without a key: those of `serialize/2` without
  `:key` (checked against their checksum) or with one (not checked).

  **Unsafe**: the bytes are native code that runs in the VM unvalidated,
  and a checksum stops accidents, not attackers (a crafted artifact can
  run any code or crash the VM). Use it only for bytes that never left
  storage only you can write; prefer `deserialize/3` with a key.
  """
  @spec deserialize_unsafe(Engine.t(), binary()) :: {:ok, t()} | {:error, Error.t()}
  def deserialize_unsafe(engine \\ Engine.default(), bytes)

  def deserialize_unsafe(%Engine{}, bytes) when not is_binary(bytes),
    do: {:error, not_bytes(bytes)}

  def deserialize_unsafe(%Engine{} = engine, bytes),
    do: wrap_loaded(engine, Native.module_deserialize_unsafe(engine.ref, bytes))

  def deserialize_unsafe(engine, _bytes), do: {:error, not_an_engine(engine)}

  @doc "Like `deserialize_unsafe/2`, but raises `Wasmbeam.Error` (and is as unsafe)."
  @spec deserialize_unsafe!(Engine.t(), binary()) :: t()
  def deserialize_unsafe!(engine \\ Engine.default(), bytes),
    do: deserialize_unsafe(engine, bytes) |> Error.unwrap!()

  defp wrap_loaded(engine, {:ok, ref}), do: {:ok, %__MODULE__{ref: ref, engine: engine}}
  defp wrap_loaded(_engine, {:error, _} = error), do: error

  @doc false
  # The `:key` option of serialize/deserialize (modules and components).
  @spec key_option(term(), :optional | :required) :: {:ok, binary() | nil} | {:error, Error.t()}
  def key_option(options, need) when is_list(options) do
    case Keyword.get(options, :key) do
      nil when need == :optional ->
        {:ok, nil}

      nil ->
        {:error,
         Error.new(
           :argument,
           "deserialize/3 needs the :key the bytes were sealed with (serialize(module, key: key)); " <>
             "bytes without one load only with deserialize_unsafe/2"
         )}

      key when is_binary(key) and byte_size(key) == 32 ->
        {:ok, key}

      other ->
        {:error,
         Error.new(:argument, ":key must be a 32-byte binary, got: #{inspect(other, limit: 5)}")}
    end
  end

  def key_option(options, _need),
    do: {:error, Error.new(:argument, "options must be a keyword list, got: #{inspect(options)}")}

  defp not_an_engine(engine),
    do: Error.new(:argument, "expected a %Wasmbeam.Engine{}, got: #{inspect(engine, limit: 5)}")

  defimpl Inspect do
    def inspect(module, opts) do
      exports = Wasmbeam.Types.format_exports(Wasmbeam.Module.exports(module), opts)
      "#Wasmbeam.Module<#{exports}>"
    end
  end
end
