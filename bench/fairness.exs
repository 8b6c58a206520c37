# Fairness: the actual duration of `Process.sleep(1)` in a plain process,
# idle and while 20 guests spin (20 processes, each calling an infinite loop
# on its own instance with `timeout: 1000`, again and again). Afterwards,
# every instance must still answer a call.
#
#     mix run bench/fairness.exs
#
# Environment: FAIRNESS_SAMPLES (default 1000), FAIRNESS_GUESTS (default 20),
# FAIRNESS_GUESTS_IN: `calling` (default: each spinner process calls a bare
# instance, so the guest runs in that process) or `instance_process` (each
# spinner calls an instance process, `Wasmbeam.Instance.start_link/1`, whose
# guest runs in the instance process), FAIRNESS_WORST (default 0): also
# print that many of the longest loaded sleeps, each with the time it
# started (ms after loaded sampling began), to see whether they cluster.

Code.require_file("support/harness.ex", __DIR__)

defmodule Wasmbeam.Bench.Fairness do
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

  @guest_timeout 1_000

  def run do
    samples = String.to_integer(System.get_env("FAIRNESS_SAMPLES", "1000"))
    guests = String.to_integer(System.get_env("FAIRNESS_GUESTS", "20"))
    guests_in = System.get_env("FAIRNESS_GUESTS_IN", "calling")

    IO.puts(
      "bench/fairness.exs: #{Harness.machine()}; #{samples} sleeps, #{guests} guests " <>
        "running in #{guests_in}"
    )

    module = Wasmbeam.Module.compile!(@wat)

    instances =
      case guests_in do
        "calling" ->
          for _ <- 1..guests, do: Instance.new!(module)

        "instance_process" ->
          for _ <- 1..guests do
            {:ok, pid} = Instance.start_link(module: module)
            pid
          end

        other ->
          raise "FAIRNESS_GUESTS_IN must be calling or instance_process, got: #{inspect(other)}"
      end

    idle = samples |> sleep_samples() |> Enum.map(&elem(&1, 0))

    parent = self()
    spinners = Enum.map(instances, &spawn_spinner(&1, parent))
    # Let every guest get going before sampling.
    Process.sleep(50)
    loaded_start = now()
    timed = sleep_samples(samples)
    loaded_ns = now() - loaded_start
    loaded = Enum.map(timed, &elem(&1, 0))

    Enum.each(spinners, &send(&1, :stop))

    calls =
      for pid <- spinners do
        receive do
          {:spinner_done, ^pid, calls} -> calls
        after
          5_000 -> raise "a spinner did not stop within 5 s"
        end
      end

    timeout_errors = calls |> Enum.flat_map(& &1) |> Enum.map(&elem(&1, 1))
    durations = calls |> Enum.flat_map(& &1) |> Enum.map(&elem(&1, 0))

    IO.puts("")
    print_header()
    print_row("Process.sleep(1), idle", Harness.percentiles(idle), nil)

    print_row(
      "Process.sleep(1), #{guests} guests spinning",
      Harness.percentiles(loaded),
      "p99 <= 5 ms"
    )

    worst = String.to_integer(System.get_env("FAIRNESS_WORST", "0"))
    print_worst(timed, loaded_start, worst)

    IO.puts(
      "\nloaded sampling took #{fmt(loaded_ns)}; the #{guests} guests made " <>
        "#{length(durations)} calls of spin(timeout: #{@guest_timeout}), " <>
        "all ended with: #{inspect(Enum.frequencies(timeout_errors))}"
    )

    if durations != [] do
      s = Harness.percentiles(durations)

      IO.puts(
        "duration of those timed-out calls: median #{fmt(s.median)}, p99 #{fmt(s.p99)}, " <>
          "min #{fmt(s.min)}, max #{fmt(s.max)}"
      )
    end

    answers =
      for instance <- instances, do: Instance.call(instance, "add", [1, 2], timeout: 1_000)

    ok = Enum.count(answers, &(&1 == {:ok, [3]}))
    IO.puts("after the run, #{ok} of #{guests} instances answer add(1, 2) = 3")

    unless ok == guests do
      raise "instances that did not answer: #{inspect(Enum.reject(answers, &(&1 == {:ok, [3]})))}"
    end
  end

  defp print_worst(_timed, _since, 0), do: :ok

  defp print_worst(timed, since, count) do
    worst =
      timed
      |> Enum.sort_by(&elem(&1, 0), :desc)
      |> Enum.take(count)
      |> Enum.map_join(", ", fn {ns, at} ->
        "#{fmt(ns)} at #{div(at - since, 1_000_000)} ms"
      end)

    IO.puts("longest loaded sleeps: " <> worst)
  end

  defp spawn_spinner(%Instance{} = instance, parent) do
    {:ok, spin} = Instance.func(instance, "spin")

    spawn_link(fn ->
      spin_loop(fn -> Func.call(spin, [], timeout: @guest_timeout) end, parent, [])
    end)
  end

  defp spawn_spinner(server, parent) when is_pid(server) do
    call = fn -> Instance.call(server, "spin", [], timeout: @guest_timeout) end
    spawn_link(fn -> spin_loop(call, parent, []) end)
  end

  defp spin_loop(spin, parent, calls) do
    receive do
      :stop -> send(parent, {:spinner_done, self(), calls})
    after
      0 ->
        t0 = now()
        {:error, %Wasmbeam.Error{kind: kind}} = spin.()
        spin_loop(spin, parent, [{now() - t0, kind} | calls])
    end
  end

  # In a plain process of its own, at normal priority: {duration, start}.
  defp sleep_samples(n) do
    task =
      Task.async(fn ->
        for _ <- 1..n do
          t0 = now()
          Process.sleep(1)
          {now() - t0, t0}
        end
      end)

    Task.await(task, :infinity)
  end

  defp print_header do
    IO.puts(
      String.pad_trailing("what", 40) <>
        Enum.map_join(~w(median p99 p99.9 max n), "", &String.pad_leading(&1, 11)) <>
        "  target"
    )
  end

  defp print_row(name, s, target) do
    verdict =
      cond do
        target == nil -> ""
        s.p99 <= 5_000_000 -> target <> " ok"
        true -> target <> " MISS"
      end

    IO.puts(
      String.pad_trailing(name, 40) <>
        Enum.map_join([s.median, s.p99, s.p999, s.max], "", &String.pad_leading(fmt(&1), 11)) <>
        String.pad_leading("#{s.n}", 11) <> "  " <> verdict
    )
  end

  defp fmt(ns) when ns < 1_000_000, do: "#{:erlang.float_to_binary(ns / 1_000, decimals: 1)} us"
  defp fmt(ns), do: "#{:erlang.float_to_binary(ns / 1_000_000, decimals: 2)} ms"

  defp now, do: :erlang.monotonic_time(:nanosecond)
end

Wasmbeam.Bench.Fairness.run()
