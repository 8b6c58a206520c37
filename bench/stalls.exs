# The longest time one guest instruction holds a scheduler under the
# default store limits (256 MiB per memory, 1,000,000 table elements; see
# Wasmbeam.Store). memory.fill, memory.copy, table.grow and table.fill run
# without a time-slice check inside them, so their size is the stall.
#
#     mix run bench/stalls.exs
#
# For each operation: how long the call took, and the largest gap seen by
# heartbeat processes (loops of `receive after 1`, one per scheduler; the
# BEAM places them) while it ran. The baseline row is the heartbeats alone,
# in the same invocation.
defmodule Wasmbeam.Bench.Stalls do
  alias Wasmbeam.{Instance, Module}

  @rounds 5
  @page 65_536
  @wat ~S[(module
    (memory (export "memory") 1)
    (table $t 1 funcref)
    (func (export "grow_memory") (param i32) (result i32) local.get 0 memory.grow)
    (func (export "fill") (param i32) i32.const 0 i32.const 7 local.get 0 memory.fill)
    (func (export "copy") (param i32) i32.const 0 local.get 0 local.get 0 memory.copy)
    (func (export "grow_table") (param i32) (result i32) ref.null func local.get 0 table.grow $t)
    (func (export "fill_table") (param i32) i32.const 0 ref.null func local.get 0 table.fill $t))]

  def run do
    module = Module.compile!(@wat)
    max_pages = div(256 * 1024 * 1024, @page)

    IO.puts(
      "bench/stalls.exs: OTP #{System.otp_release()}, Elixir #{System.version()}, " <>
        "#{System.schedulers_online()} schedulers, load average #{load()}; #{@rounds} rounds each"
    )

    IO.puts(
      String.pad_trailing("operation (default limits)", 44) <>
        "  call median   call max   heartbeat gap median   max"
    )

    row("heartbeat alone (baseline)", fn -> :ok end, fn _ -> Process.sleep(50) end)

    row(
      "memory.fill 256 MiB (grown first)",
      fn ->
        i = Instance.new!(module)
        {:ok, [1]} = Instance.call(i, "grow_memory", [max_pages - 1])
        i
      end,
      fn i -> {:ok, []} = Instance.call(i, "fill", [max_pages * @page]) end
    )

    row(
      "memory.copy 128 MiB (grown first)",
      fn ->
        i = Instance.new!(module)
        {:ok, [1]} = Instance.call(i, "grow_memory", [max_pages - 1])
        i
      end,
      fn i -> {:ok, []} = Instance.call(i, "copy", [div(max_pages * @page, 2)]) end
    )

    row(
      "table.grow to 1,000,000",
      fn -> Instance.new!(module) end,
      fn i -> {:ok, [1]} = Instance.call(i, "grow_table", [999_999]) end
    )

    row(
      "table.fill 1,000,000 (grown first)",
      fn ->
        i = Instance.new!(module)
        {:ok, [1]} = Instance.call(i, "grow_table", [999_999])
        i
      end,
      fn i -> {:ok, []} = Instance.call(i, "fill_table", [1_000_000]) end
    )
  end

  defp row(name, setup, op) do
    samples =
      for _ <- 1..@rounds do
        state = setup.()
        heart = start_heartbeat()
        t0 = System.monotonic_time(:microsecond)
        op.(state)
        took = System.monotonic_time(:microsecond) - t0
        {took, stop_heartbeat(heart)}
      end

    calls = Enum.map(samples, &elem(&1, 0)) |> Enum.sort()
    gaps = Enum.map(samples, &elem(&1, 1)) |> Enum.sort()

    IO.puts(
      String.pad_trailing(name, 44) <>
        "  " <>
        Enum.map_join(
          [median(calls), List.last(calls), median(gaps), List.last(gaps)],
          "  ",
          &String.pad_leading(ms(&1), 11)
        )
    )
  end

  # Heartbeats on every scheduler: the largest gap any of them saw.
  defp start_heartbeat do
    parent = self()

    pids =
      for _ <- 1..System.schedulers_online() do
        spawn(fn ->
          send(parent, {:beating, self()})
          beat(parent, System.monotonic_time(:microsecond), 0)
        end)
      end

    # Every heartbeat runs before the operation starts.
    for pid <- pids do
      receive do
        {:beating, ^pid} -> :ok
      end
    end

    pids
  end

  defp beat(parent, last, worst) do
    receive do
      :stop -> send(parent, {:gap, worst})
    after
      1 ->
        now = System.monotonic_time(:microsecond)
        beat(parent, now, max(worst, now - last))
    end
  end

  defp stop_heartbeat(pids) do
    Enum.each(pids, &send(&1, :stop))

    Enum.reduce(pids, 0, fn _, worst ->
      receive do
        {:gap, gap} -> max(gap, worst)
      end
    end)
  end

  defp median(sorted), do: Enum.at(sorted, div(length(sorted), 2))
  defp ms(us), do: "#{Float.round(us / 1000, 1)} ms"
  defp load, do: File.read!("/proc/loadavg") |> String.split() |> Enum.take(3) |> Enum.join(" ")
end

Wasmbeam.Bench.Stalls.run()
