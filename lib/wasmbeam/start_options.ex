defmodule Wasmbeam.StartOptions do
  @moduledoc false
  # Checks of the options that instance processes and pools share.

  alias Wasmbeam.{Error, Module}

  @doc false
  # `:module` is a compiled module or component, or wasm bytes / WAT text
  # to compile as a module.
  @spec module(term()) :: {:ok, Module.t() | Wasmbeam.Component.t()} | {:error, Error.t()}
  def module(%Module{} = module), do: {:ok, module}
  def module(%Wasmbeam.Component{} = component), do: {:ok, component}

  def module(source) when is_binary(source) do
    if Wasmbeam.Component.component?(source),
      do: Wasmbeam.Component.compile(source),
      else: Module.compile(source)
  end

  def module(nil), do: {:error, Error.new(:argument, "the :module option is required")}

  def module(other),
    do:
      {:error,
       Error.new(
         :argument,
         ":module must be a %Wasmbeam.Module{}, a %Wasmbeam.Component{}, wasm bytes or WAT text, got: #{inspect(other)}"
       )}

  @doc false
  # An option that must be a list (default `[]`).
  @spec list(keyword(), atom()) :: {:ok, list()} | {:error, Error.t()}
  def list(options, key) do
    case Keyword.get(options, key, []) do
      list when is_list(list) ->
        {:ok, list}

      other ->
        {:error, Error.new(:argument, "#{inspect(key)} must be a list, got: #{inspect(other)}")}
    end
  end
end
