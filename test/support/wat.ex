defmodule Wasmbeam.Test.Wat do
  @moduledoc false
  # Small helpers shared by the tests.

  @doc "Compiles WAT with the default engine and instantiates it in a new store."
  def instance!(wat, imports \\ %{}, options \\ []) do
    wat |> Wasmbeam.Module.compile!() |> Wasmbeam.Instance.new!(imports, options)
  end

  @doc """
  Calls `fun` every 10 ms until it returns a truthy value or `timeout_ms`
  have passed; returns the last value. For waiting on a state change, never
  for measuring time.
  """
  def eventually(fun, timeout_ms \\ 2_000) do
    deadline = System.monotonic_time(:millisecond) + timeout_ms
    poll(fun, deadline)
  end

  defp poll(fun, deadline) do
    case fun.() do
      result when result not in [nil, false] ->
        result

      result ->
        if System.monotonic_time(:millisecond) >= deadline do
          result
        else
          Process.sleep(10)
          poll(fun, deadline)
        end
    end
  end

  @doc "Waits until `store` reports `:busy` (a call is running on it)."
  def await_busy(%Wasmbeam.Store{} = store, timeout_ms \\ 2_000) do
    eventually(
      fn -> match?({:error, %Wasmbeam.Error{kind: :busy}}, Wasmbeam.Store.fuel(store)) end,
      timeout_ms
    )
  end

  @doc "The 64-bit IEEE encoding of a float, to compare signs and payloads exactly."
  def f64_bits(x) when is_float(x), do: <<x::float-64>>

  @doc "-0.0, built from its bits (a `-0.0` literal may be folded to 0.0)."
  def negative_zero do
    <<z::float-64>> = <<1::1, 0::63>>
    z
  end
end
