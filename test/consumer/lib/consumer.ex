defmodule Consumer do
  @moduledoc "Calls into Wasmbeam as a dependent application would."

  @wat ~S"""
  (module
    (func (export "mul") (param i64 i64) (result i64)
      local.get 0 local.get 1 i64.mul))
  """

  def check do
    {:ok, instance} = Wasmbeam.load(@wat)
    {:ok, [result]} = Wasmbeam.Instance.call(instance, "mul", [6, 7])
    IO.puts("consumer result: #{result}")
  end
end
