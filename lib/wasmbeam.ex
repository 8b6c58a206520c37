defmodule Wasmbeam do
  @moduledoc """
  Run WebAssembly inside the BEAM.

  Wasmbeam compiles modules with Wasmtime and runs them in the calling BEAM
  process, a slice of at most ~100 µs at a time, so guests never block the
  VM's schedulers, and every failure — invalid bytes, missing imports,
  traps, timeouts, exhausted fuel — comes back as
  `{:error, %Wasmbeam.Error{}}`.

  The pieces, from the outside in:

    * `Wasmbeam.Engine` compiles and runs code (one shared default per VM)
    * `Wasmbeam.Module` is compiled code, shareable and immutable
    * `Wasmbeam.Store` holds instances, their state and their limits
    * `Wasmbeam.Instance` is a module instantiated in a store, with
      `Wasmbeam.Func`, `Wasmbeam.Memory`, `Wasmbeam.Global` and
      `Wasmbeam.Table` handles to its exports
    * `Wasmbeam.Types` says how Wasm values look in Elixir

  ## Example

      iex> {:ok, instance} = Wasmbeam.load(~S[(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))])
      iex> Wasmbeam.Instance.call(instance, "add", [20, 22])
      {:ok, [42]}
  """

  @doc """
  Compiles wasm bytes or WAT text with the default engine and instantiates
  it in a new store: the shortest way from bytes to something callable.
  Options are those of `Wasmbeam.Instance.new/3`, plus `cache:` (see
  `Wasmbeam.Module.compile/3`), which defaults to the `:enabled` setting of
  `Wasmbeam.ModuleCache` in the application environment (off unless set).
  """
  @spec load(binary(), Wasmbeam.Imports.t(), keyword()) ::
          {:ok, Wasmbeam.Instance.t()} | {:error, Wasmbeam.Error.t()}
  def load(bytes, imports \\ %{}, options \\ [])

  def load(bytes, imports, options) when is_list(options) do
    default_cache = Application.get_env(:wasmbeam, Wasmbeam.ModuleCache, [])[:enabled] == true
    {cache, options} = Keyword.pop(options, :cache, default_cache)

    with {:ok, module} <- Wasmbeam.Module.compile(Wasmbeam.Engine.default(), bytes, cache: cache) do
      Wasmbeam.Instance.new(module, imports, options)
    end
  end

  def load(_bytes, _imports, options),
    do:
      {:error,
       Wasmbeam.Error.new(:argument, "options must be a keyword list, got: #{inspect(options)}")}

  @doc """
  Like `load/3`, but returns the instance or raises `Wasmbeam.Error`.

      iex> instance = Wasmbeam.load!(~S[(module (func (export "f") (result i32) i32.const 7))])
      iex> Wasmbeam.Instance.call!(instance, "f", [])
      [7]
  """
  @spec load!(binary(), Wasmbeam.Imports.t(), keyword()) :: Wasmbeam.Instance.t()
  def load!(bytes, imports \\ %{}, options \\ []),
    do: load(bytes, imports, options) |> Wasmbeam.Error.unwrap!()
end
