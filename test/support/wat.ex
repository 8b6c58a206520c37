defmodule Wasmbeam.Test.Wat do
  @moduledoc false
  # Small helpers shared by the tests.

  @doc "Compiles WAT with the default engine and instantiates it in a new store."
  def instance!(wat, imports \\ %{}, options \\ []) do
    wat |> Wasmbeam.Module.compile!() |> Wasmbeam.Instance.new!(imports, options)
  end
end
