defmodule Consumer do
  @moduledoc "Calls into Wasmbeam as a dependent application would."

  @wat ~S"""
  (module
    (func (export "mul") (param i64 i64) (result i64)
      local.get 0 local.get 1 i64.mul)
    (func (export "boom") unreachable))
  """

  def check do
    {:ok, instance} = Wasmbeam.load(@wat)
    {:ok, [result]} = Wasmbeam.Instance.call(instance, "mul", [6, 7])
    IO.puts("consumer result: #{result}")

    # No :telemetry here: Wasmbeam finds none and emits nothing, and its
    # emitting paths (a compile, a trap) work without it.
    {:error, %Wasmbeam.Error{kind: :trap}} = Wasmbeam.Instance.call(instance, "boom", [])
    IO.puts("consumer telemetry: #{Wasmbeam.Telemetry.enabled?()}")
  end
end
