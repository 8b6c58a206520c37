defmodule Wasmbeam.Types do
  @moduledoc """
  How Wasm types and values look in Elixir.

  ## Value types

  `:i32`, `:i64`, `:f32`, `:f64`, `:v128`, `:funcref`, `:externref` (and
  `:anyref`, `:exnref` for proposals that add them).

  ## Values

  | Wasm | Elixir argument | Elixir result |
  |---|---|---|
  | i32, i64 | integer in the signed or unsigned range | signed integer |
  | f32, f64 | float or integer; `:infinity`, `:neg_infinity`, `:nan`, `{:nan, bits}` | float, or one of those atoms/tuples |
  | v128 | integer, 0..2^128-1 (negative accepted as two's complement) | non-negative integer |
  | funcref | `%Wasmbeam.Func{}` of the same store, or `nil` | `%Wasmbeam.Func{}` or `nil` |
  | externref | any term, or `nil` for null | the same term, or `nil` |

  Floats round-trip exactly: `-0.0` keeps its sign, and a NaN other than
  the canonical one comes back as `{:nan, bits}` with its full bit pattern
  (`bits` is the 32- or 64-bit IEEE encoding), which can be passed back in.

  ## Extern types

  As returned by `Wasmbeam.Module.imports/1` and `Wasmbeam.Module.exports/1`:

    * `{:func, params, results}`
    * `{:memory, %{min: pages, max: pages | nil, memory64: boolean, shared: boolean, page_size: bytes}}`
    * `{:table, %{element: ref_type, min: n, max: n | nil}}`
    * `{:global, value_type, :const | :var}`
    * `{:tag, params}`
  """

  @type value_type ::
          :i32 | :i64 | :f32 | :f64 | :v128 | :funcref | :externref | :anyref | :exnref
  @type float_value :: float() | :infinity | :neg_infinity | :nan | {:nan, non_neg_integer()}
  @type value :: integer() | float_value() | Wasmbeam.Func.t() | term() | nil
  @type memory_info :: %{
          min: non_neg_integer(),
          max: non_neg_integer() | nil,
          memory64: boolean(),
          shared: boolean(),
          page_size: pos_integer()
        }
  @type table_info :: %{
          element: value_type(),
          min: non_neg_integer(),
          max: non_neg_integer() | nil
        }
  @type extern_type ::
          {:func, [value_type()], [value_type()]}
          | {:memory, memory_info()}
          | {:table, table_info()}
          | {:global, value_type(), :const | :var}
          | {:tag, [value_type()]}

  @doc """
  Formats an extern type the way the WebAssembly text format would, for
  messages and `Inspect`.

      iex> Wasmbeam.Types.format({:func, [:i32, :i32], [:i32]})
      "func (i32, i32) -> i32"
      iex> Wasmbeam.Types.format({:memory, %{min: 1, max: nil, memory64: false, shared: false, page_size: 65536}})
      "memory 1.."
  """
  @spec format(extern_type()) :: String.t()
  def format({:func, params, [result]}), do: "func (#{Enum.join(params, ", ")}) -> #{result}"

  def format({:func, params, results}),
    do: "func (#{Enum.join(params, ", ")}) -> (#{Enum.join(results, ", ")})"

  def format({:memory, %{min: min, max: max}}), do: "memory #{min}..#{max}"
  def format({:table, %{element: e, min: min, max: max}}), do: "table #{e} #{min}..#{max}"
  def format({:global, t, :const}), do: "global #{t}"
  def format({:global, t, :var}), do: "global mut #{t}"
  def format({:tag, params}), do: "tag (#{Enum.join(params, ", ")})"

  @doc false
  # The exports of a module or instance for `Inspect`: at most
  # `opts.limit` of them (`inspect/2`'s default is 50), then how many more,
  # so that a module with thousands of exports prints a short line.
  @spec format_exports([{String.t(), extern_type()}], Inspect.Opts.t()) :: String.t()
  def format_exports(exports, %Inspect.Opts{limit: limit}) do
    {shown, rest} =
      case limit do
        :infinity -> {exports, []}
        limit -> Enum.split(exports, max(limit, 0))
      end

    listed = Enum.map(shown, fn {name, type} -> "#{name}: #{format(type)}" end)

    case length(rest) do
      0 -> Enum.join(listed, ", ")
      more -> Enum.join(listed ++ ["... (#{more} more)"], ", ")
    end
  end
end
