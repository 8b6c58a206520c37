defmodule Wasmbeam.Test.Wat do
  @moduledoc false
  # Small helpers shared by the tests.

  @doc """
  A module for priority tests: `work(n)` counts n down (far more than one
  slice of work for n in the hundreds of millions), then calls the import
  `env.report`; `quick` calls it at once; `spin` never returns. With
  `priority_imports/1` as imports, the handler sends
  `{:priority_in_handler, priority}` to the given process.
  """
  def priority_reporter_wat do
    ~S"""
    (module
      (import "env" "report" (func $report))
      (func (export "work") (param $n i64)
        (loop $count
          (local.set $n (i64.sub (local.get $n) (i64.const 1)))
          (br_if $count (i64.ne (local.get $n) (i64.const 0))))
        call $report)
      (func (export "quick") call $report)
      (func (export "spin") (loop br 0)))
    """
  end

  @doc "Imports for `priority_reporter_wat/0` that report to `pid`."
  def priority_imports(pid) do
    report = fn _caller ->
      {:priority, priority} = Process.info(self(), :priority)
      send(pid, {:priority_in_handler, priority})
      :ok
    end

    %{"env" => %{"report" => {:fn, [], [], report}}}
  end

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
