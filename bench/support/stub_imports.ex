defmodule Wasmbeam.Bench.StubImports do
  @moduledoc """
  Import maps for instantiating a module whose imports a bench does not
  provide (CPython's WASI imports, for instance): every function import
  becomes a host function that raises if the guest calls it, so the
  module instantiates and any call into it that needs an import traps.
  """

  @doc "Stubs for every function import of `module`."
  @spec for_module(Wasmbeam.Module.t()) :: Wasmbeam.Imports.t()
  def for_module(module) do
    module
    |> Wasmbeam.Module.imports()
    |> Enum.reduce(%{}, fn {mod, name, {:func, params, results}}, acc ->
      raise_called = fn -> raise "stub #{mod}.#{name} called" end
      import = {:fn, params, results, stub_of_arity(length(params), raise_called)}
      Map.update(acc, mod, %{name => import}, &Map.put(&1, name, import))
    end)
  end

  # A host function takes the caller and then one argument per parameter.
  for arity <- 0..16 do
    ignored = for i <- 0..arity, do: Macro.var(:"_arg#{i}", __MODULE__)
    defp stub_of_arity(unquote(arity), stub), do: fn unquote_splicing(ignored) -> stub.() end
  end
end
