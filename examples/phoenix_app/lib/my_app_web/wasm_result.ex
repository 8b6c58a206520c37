defmodule MyAppWeb.WasmResult do
  @moduledoc """
  How a Wasmbeam outcome becomes an HTTP status: the mapping README.md
  describes, in one place for every route.

  | `%Wasmbeam.Error{kind: ...}` | status |
  |---|---|
  | `:overloaded` (the pool refused: instances and waiting room full) | 503 |
  | `:timeout` (the deadline passed, or no instance came in time) | 504 |
  | `:trap`, `:out_of_fuel`, `:limit` (the guest failed) | 422 |
  | `:type`, `:argument` (the request's input does not fit the export) | 400 |
  | `:not_found` (no such export) | 404 |
  | anything else | 500 |
  """

  @spec status(Wasmbeam.Error.t()) :: 400..599
  def status(%Wasmbeam.Error{kind: kind}) do
    case kind do
      :overloaded -> 503
      :timeout -> 504
      kind when kind in [:trap, :out_of_fuel, :limit] -> 422
      kind when kind in [:type, :argument] -> 400
      :not_found -> 404
      _ -> 500
    end
  end

  @doc "The JSON body of an error."
  @spec body(Wasmbeam.Error.t()) :: map()
  def body(%Wasmbeam.Error{kind: kind} = error),
    do: %{error: kind, message: Exception.message(error)}
end
