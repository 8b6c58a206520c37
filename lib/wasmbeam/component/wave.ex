defmodule Wasmbeam.Component.Wave do
  @moduledoc """
  Component calls written as text in WAVE, the WebAssembly Value Encoding
  that the Wasmtime CLI's `--invoke` reads and prints: `add(1, 2)`,
  `greet("world")`, `my:pkg/shapes#area({width: 2.0, height: 3.0})`.
  The text is read against the export's WIT types, so the same call
  works whatever language the component was written in; results are
  printed the same way (`3`, `"hello, world"`, `ok("x")`).

  This is what `mix wasmbeam.run --invoke` uses for components, and a
  quick way to try a component in `iex`.

  ## Examples

      iex> wat = ~S[(component
      ...>   (core module $m
      ...>     (func (export "add") (param i32 i32) (result i32)
      ...>       (i32.add (local.get 0) (local.get 1))))
      ...>   (core instance $i (instantiate $m))
      ...>   (func (export "add") (param "a" u32) (param "b" u32) (result u32)
      ...>     (canon lift (core func $i "add"))))]
      iex> instance = Wasmbeam.Component.Instance.new!(Wasmbeam.Component.compile!(wat))
      iex> Wasmbeam.Component.Wave.call(instance, "add(1, 2)")
      {:ok, "3"}
      iex> {:error, %Wasmbeam.Error{kind: :type}} = Wasmbeam.Component.Wave.call(instance, "add(1, -2)")
      iex> {:error, %Wasmbeam.Error{kind: :not_found}} = Wasmbeam.Component.Wave.call(instance, "sub(1, 2)")
  """

  alias Wasmbeam.{CallOptions, Error, Native}
  alias Wasmbeam.Component.Instance

  @doc """
  Calls the export that `text` names with the arguments it writes, and
  returns the result as WAVE text (`nil` for a function without a
  result). A name without parentheses calls a function of no arguments.
  `options` are those of `Wasmbeam.Component.Instance.call/4`.
  """
  @spec call(Instance.t(), String.t(), CallOptions.t()) ::
          {:ok, String.t() | nil} | {:error, Error.t()}
  def call(instance, text, options \\ [])

  def call(%Instance{} = instance, text, options) when is_binary(text) do
    with {:ok, {interface, name, args}} <- parse_call(instance, text),
         export = if(interface, do: {interface, name}, else: name),
         {:ok, value} <- called(Instance.call(instance, export, args, options)) do
      format(instance, interface, name, value)
    end
  end

  def call(%Instance{}, text, _options),
    do: {:error, Error.new(:argument, "a WAVE call is a string, got: #{inspect(text)}")}

  def call(other, _text, _options),
    do:
      {:error,
       Error.new(:argument, "expected a %Wasmbeam.Component.Instance{}, got: #{inspect(other)}")}

  @doc "Like `call/3`, but raises `Wasmbeam.Error`."
  @spec call!(Instance.t(), String.t(), CallOptions.t()) :: String.t() | nil
  def call!(instance, text, options \\ []), do: call(instance, text, options) |> Error.unwrap!()

  @doc """
  Reads `text` as a call of one of `instance`'s exports:
  `{:ok, {interface | nil, name, arguments}}`, the arguments as
  `Wasmbeam.Component.Instance.call/4` takes them.
  """
  @spec parse_call(Instance.t(), String.t()) ::
          {:ok, {String.t() | nil, String.t(), list()}} | {:error, Error.t()}
  def parse_call(%Instance{ref: ref}, text) when is_binary(text) do
    cond do
      not String.valid?(text) ->
        {:error, Error.new(:argument, "a WAVE call must be UTF-8, got: #{inspect(text)}")}

      String.contains?(text, "(") ->
        Native.component_wave_call(ref, text)

      true ->
        Native.component_wave_call(ref, String.trim(text) <> "()")
    end
  end

  def parse_call(%Instance{}, text),
    do: {:error, Error.new(:argument, "a WAVE call is a string, got: #{inspect(text)}")}

  def parse_call(other, _text),
    do:
      {:error,
       Error.new(:argument, "expected a %Wasmbeam.Component.Instance{}, got: #{inspect(other)}")}

  @doc "Like `parse_call/2`, but raises `Wasmbeam.Error`."
  @spec parse_call!(Instance.t(), String.t()) :: {String.t() | nil, String.t(), list()}
  def parse_call!(instance, text), do: parse_call(instance, text) |> Error.unwrap!()

  @doc """
  The WAVE text of `value`, a result of the export at `{interface, name}`
  (`nil` when the function has no result).
  """
  @spec format(Instance.t(), String.t() | nil, String.t(), term()) ::
          {:ok, String.t() | nil} | {:error, Error.t()}
  def format(%Instance{ref: ref}, interface, name, value)
      when (is_binary(interface) or is_nil(interface)) and is_binary(name),
      do: Native.component_wave_format(ref, interface, name, value)

  def format(%Instance{}, interface, name, _value),
    do:
      {:error,
       Error.new(
         :argument,
         "an export is named by an interface (or nil) and a name, got: #{inspect({interface, name})}"
       )}

  def format(other, _interface, _name, _value),
    do:
      {:error,
       Error.new(:argument, "expected a %Wasmbeam.Component.Instance{}, got: #{inspect(other)}")}

  @doc "Like `format/4`, but raises `Wasmbeam.Error`."
  @spec format!(Instance.t(), String.t() | nil, String.t(), term()) :: String.t() | nil
  def format!(instance, interface, name, value),
    do: format(instance, interface, name, value) |> Error.unwrap!()

  defp called({:ok, value}), do: {:ok, value}
  defp called(:ok), do: {:ok, nil}
  defp called({:error, _} = error), do: error
end
