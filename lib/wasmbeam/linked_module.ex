defmodule Wasmbeam.LinkedModule do
  @moduledoc """
  A module linked once with its imports, to instantiate many times quickly
  (Wasmtime's `InstancePre`).

  `Wasmbeam.Instance.new/3` with a plain module resolves and type-checks
  every import at each instantiation. A linked module does that once; each
  `Wasmbeam.Instance.new(linked)` then only creates the instance (a few
  microseconds for a small module). Pools and per-request instances should
  use one.

  Only imports that belong to no store can be linked ahead: host functions
  (`{:fn, params, results, handler}`) and WASI (`wasi: true`; each
  instance then gets its own WASI context from the `:wasi` option of
  `Wasmbeam.Instance.new/3`). Exports of other instances, and defined
  globals, memories and tables, live in one store: use
  `Wasmbeam.Instance.new/3` with a plain module for those.

  ## Examples

      iex> module = Wasmbeam.Module.compile!(~S[(module
      ...>   (import "env" "scale" (func $scale (param i32) (result i32)))
      ...>   (func (export "run") (param i32) (result i32) (call $scale (local.get 0))))])
      iex> imports = %{"env" => %{"scale" => {:fn, [:i32], [:i32], fn _caller, x -> x * 10 end}}}
      iex> {:ok, linked} = Wasmbeam.LinkedModule.new(module, imports)
      iex> instance = Wasmbeam.Instance.new!(linked)
      iex> Wasmbeam.Instance.call(instance, "run", [4])
      {:ok, [40]}
      iex> Wasmbeam.Instance.call(Wasmbeam.Instance.new!(linked), "run", [5])
      {:ok, [50]}

  A WASI module, linked once and run with a different context each time:

      iex> wat = ~S[(module
      ...>   (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      ...>   (memory (export "memory") 1)
      ...>   (func (export "_start") (call $exit (i32.const 4))))]
      iex> {:ok, linked} = Wasmbeam.LinkedModule.new(Wasmbeam.Module.compile!(wat), %{}, wasi: true)
      iex> Wasmbeam.Wasi.run(linked)
      {:ok, %{exit_code: 4, stdout: "", stderr: ""}}
  """

  alias Wasmbeam.{Error, Imports, Module, Native}

  @enforce_keys [:ref, :module, :wasi]
  defstruct [:ref, :module, :wasi]

  @type t :: %__MODULE__{
          ref: reference(),
          module: Module.t() | Wasmbeam.Component.t(),
          wasi: boolean()
        }

  @doc """
  Links `module` with `imports` (see `Wasmbeam.Imports`; host functions
  only).

  ## Options

    * `:wasi` - `true` to take the module's WASI preview 1 imports that
      `imports` does not name from Wasmtime's WASI (default `false`); for a
      component, its `wasi:` interfaces from WASI preview 2. Each instance
      then gets its own WASI context from the `:wasi` option of
      `Wasmbeam.Instance.new/3`.
  """
  @spec new(Module.t() | Wasmbeam.Component.t(), Imports.t() | map(), keyword()) ::
          {:ok, t()} | {:error, Error.t()}
  def new(module, imports \\ %{}, options \\ [])

  def new(%Module{} = module, imports, options) when is_list(options) do
    wasi? = Keyword.get(options, :wasi, false)

    with :ok <- check_options(options, wasi?),
         {:ok, resolved} <- Imports.resolve(module, imports, wasi: wasi?),
         {:ok, ref} <- Native.linked_new(module.ref, resolved) do
      {:ok, %__MODULE__{ref: ref, module: module, wasi: wasi?}}
    end
  end

  # A component: its imports as for `Wasmbeam.Component.Instance.new/3`.
  # With `wasi: true`, its `wasi:` imports come from WASI preview 2.
  def new(%Wasmbeam.Component{} = component, imports, options) when is_list(options) do
    wasi? = Keyword.get(options, :wasi, false)

    with :ok <- check_options(options, wasi?),
         {:ok, bindings} <- Wasmbeam.Component.Instance.bindings(component, imports),
         {:ok, ref} <- Native.component_link(component.ref, bindings, wasi?) do
      {:ok, %__MODULE__{ref: ref, module: component, wasi: wasi?}}
    end
  end

  def new(other, _imports, _options),
    do:
      {:error,
       Error.new(
         :argument,
         "expected a %Wasmbeam.Module{} or %Wasmbeam.Component{}, got: #{inspect(other)}"
       )}

  @doc "Like `new/3`, but raises `Wasmbeam.Error`."
  @spec new!(Module.t(), Imports.t(), keyword()) :: t()
  def new!(module, imports \\ %{}, options \\ []),
    do: new(module, imports, options) |> Error.unwrap!()

  defp check_options(options, wasi?) do
    cond do
      Keyword.keys(options) -- [:wasi] != [] ->
        {:error,
         Error.new(:argument, "unknown options #{inspect(Keyword.keys(options) -- [:wasi])}")}

      not is_boolean(wasi?) ->
        {:error, Error.new(:argument, ":wasi must be a boolean, got: #{inspect(wasi?)}")}

      true ->
        :ok
    end
  end

  defimpl Inspect do
    def inspect(linked, opts) do
      module = Inspect.inspect(linked.module, opts)
      "#Wasmbeam.LinkedModule<#{module}#{if linked.wasi, do: " +WASI", else: ""}>"
    end
  end
end
