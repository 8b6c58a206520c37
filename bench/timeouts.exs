# A runaway guest, `(loop br 0)`, called with `timeout: 10`: the time until
# the `:timeout` error, and the first call on the same instance right after
# a call that timed out.
#
#     mix run bench/timeouts.exs
#
# Environment: TIMEOUT_RUNS (default 50).

Code.require_file("support/harness.ex", __DIR__)

defmodule Wasmbeam.Bench.Timeouts do
  alias Wasmbeam.{Func, Instance}
  alias Wasmbeam.Bench.Harness

  @wat ~S"""
  (module
    (func (export "spin") (loop br 0))
    (func (export "add") (param i32 i32) (result i32)
      local.get 0
      local.get 1
      i32.add))
  """

  @timeout_ms 10

  def run do
    runs = String.to_integer(System.get_env("TIMEOUT_RUNS", "50"))
    IO.puts("bench/timeouts.exs: #{Harness.machine()}; #{runs} runs, timeout: #{@timeout_ms}")

    {:ok, instance} = Wasmbeam.load(@wat)
    {:ok, spin} = Instance.func(instance, "spin")
    {:ok, add} = Instance.func(instance, "add")

    # Warm-up: one timed-out call and a few plain ones.
    {:error, %{kind: :timeout}} = Func.call(spin, [], timeout: @timeout_ms)
    for _ <- 1..100, do: {:ok, [3]} = Func.call(add, [1, 2])

    samples =
      for _ <- 1..runs do
        t0 = now()
        {:error, %Wasmbeam.Error{kind: :timeout}} = Func.call(spin, [], timeout: @timeout_ms)
        t1 = now()
        {:ok, [3]} = Func.call(add, [1, 2])
        t2 = now()
        # By name too, the way most callers will do it.
        {:error, %Wasmbeam.Error{kind: :timeout}} =
          Instance.call(instance, "spin", [], timeout: @timeout_ms)

        t3 = now()
        {:ok, [3]} = Instance.call(instance, "add", [1, 2])
        t4 = now()
        {t1 - t0, t2 - t1, t4 - t3}
      end

    # For scale: plain calls of add on an instance that never timed out.
    {:ok, fresh} = Wasmbeam.load(@wat)
    {:ok, fresh_add} = Instance.func(fresh, "add")

    plain =
      for _ <- 1..runs do
        t0 = now()
        {:ok, [3]} = Func.call(fresh_add, [1, 2])
        now() - t0
      end

    # The store is reusable: the instance still answers, and still times out.
    {:ok, [42]} = Func.call(add, [40, 2])
    {:error, %Wasmbeam.Error{kind: :timeout}} = Func.call(spin, [], timeout: 1)

    rows = [
      {"spin with timeout: 10 -> :timeout error", Enum.map(samples, &elem(&1, 0)),
       "error within 11 ms, p99 12 ms", fn s -> s.median <= 11.0e6 and s.p99 <= 12.0e6 end},
      {"first Func.call(add) after the timeout", Enum.map(samples, &elem(&1, 1)), "<= 1 ms",
       fn s -> s.max <= 1.0e6 end},
      {"first Instance.call(add) after a timeout (by name)", Enum.map(samples, &elem(&1, 2)),
       "<= 1 ms", fn s -> s.max <= 1.0e6 end},
      {"plain Func.call(add), single call, fresh instance", plain, "", nil}
    ]

    print(rows)
    IO.puts("after all that the instance still answers add(40, 2) = 42 and still times out: ok")
  end

  defp print(rows) do
    header = ["what", "median", "p99", "min", "max", "n", "target"]

    lines =
      Enum.map(rows, fn {name, samples, target, check} ->
        s = Harness.percentiles(samples)
        verdict = if check, do: if(check.(s), do: " ok", else: " MISS"), else: ""
        [name, fmt(s.median), fmt(s.p99), fmt(s.min), fmt(s.max), "#{s.n}", target <> verdict]
      end)

    widths =
      [header | lines]
      |> Enum.zip()
      |> Enum.map(fn col -> col |> Tuple.to_list() |> Enum.map(&String.length/1) |> Enum.max() end)

    IO.puts("")
    Enum.each([header | lines], &IO.puts(line(&1, widths)))
  end

  defp line([name | rest], [w | ws]) do
    [String.pad_trailing(name, w) | Enum.zip_with(rest, ws, &String.pad_leading/2)]
    |> Enum.join("  ")
    |> String.trim_trailing()
  end

  defp fmt(ns) when ns < 1_000, do: "#{ns} ns"
  defp fmt(ns) when ns < 1_000_000, do: "#{:erlang.float_to_binary(ns / 1_000, decimals: 2)} us"
  defp fmt(ns), do: "#{:erlang.float_to_binary(ns / 1_000_000, decimals: 2)} ms"

  defp now, do: :erlang.monotonic_time(:nanosecond)
end

Wasmbeam.Bench.Timeouts.run()
