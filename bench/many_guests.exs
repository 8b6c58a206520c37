# 10,000 guests, each its own instance of a small module, each waiting in a
# host call at the same time: the handlers block in `receive` until they are
# released. Reports the wall time to get them all blocked and to release and
# finish them all, and the VM's OS thread count, RSS and `:erlang.memory()`
# before, during and after (a sampler reads /proc/self every 5 ms for the
# peaks).
#
#     mix run bench/many_guests.exs
#
# (add `elixir --erl "+P 1000000" -S` in front if the process limit is in
# the way; 10,000 guests need about 10,000 processes.)
#
# Environment: GUESTS (default 10000); MANY_GUESTS_MODE = local | process |
# both (default both): the handler runs in the calling process (it blocks in
# `receive`), or in one handler GenServer that holds every call and answers
# them all at release.

Code.require_file("support/harness.ex", __DIR__)

defmodule Wasmbeam.Bench.ManyGuests.Holder do
  # A handler process that answers no host call until told to.
  use GenServer

  def start_link(parent), do: GenServer.start_link(__MODULE__, parent)

  @impl true
  def init(parent), do: {:ok, %{parent: parent, held: []}}

  @impl true
  def handle_call({:wasmbeam_host_call, _name, _caller, [x]}, from, state) do
    {caller_pid, _} = from
    send(state.parent, {:blocked, caller_pid})
    {:noreply, %{state | held: [{from, x} | state.held]}}
  end

  def handle_call(:release, _from, state) do
    Enum.each(state.held, fn {from, x} -> GenServer.reply(from, [x + 1]) end)
    {:reply, length(state.held), %{state | held: []}}
  end
end

defmodule Wasmbeam.Bench.ManyGuests do
  alias Wasmbeam.Instance
  alias Wasmbeam.Bench.Harness

  @wat ~S"""
  (module
    (import "env" "wait" (func $wait (param i32) (result i32)))
    (memory 1)
    (func (export "run") (param i32) (result i32)
      local.get 0
      call $wait))
  """

  def run do
    guests = String.to_integer(System.get_env("GUESTS", "10000"))
    modes = modes(System.get_env("MANY_GUESTS_MODE", "both"))

    IO.puts(
      "bench/many_guests.exs: #{Harness.machine()}; #{guests} guests; " <>
        "process limit #{:erlang.system_info(:process_limit)}"
    )

    Enum.each(modes, &run_mode(&1, guests))
  end

  defp modes("both"), do: [:local, :process]
  defp modes("local"), do: [:local]
  defp modes("process"), do: [:process]

  defp run_mode(mode, guests) do
    :erlang.garbage_collect()
    parent = self()
    module = Wasmbeam.Module.compile!(@wat)

    {handler, holder} =
      case mode do
        :local ->
          handler = fn _caller, x ->
            send(parent, {:blocked, self()})

            receive do
              :release -> x + 1
            end
          end

          {handler, nil}

        :process ->
          {:ok, holder} = Wasmbeam.Bench.ManyGuests.Holder.start_link(parent)
          {{:process, holder, timeout: :infinity}, holder}
      end

    imports = %{"env" => %{"wait" => {:fn, [:i32], [:i32], handler}}}
    sampler = start_sampler()

    IO.puts("\n== handler #{describe(mode)}")
    before = snapshot("before (module compiled)")

    {instantiate_ns, instances} =
      timed(fn -> for _ <- 1..guests, do: Instance.new!(module, imports) end)

    idle = snapshot("#{guests} idle instances")

    {block_ns, pids} =
      timed(fn ->
        pids =
          for {instance, i} <- Enum.with_index(instances) do
            spawn(fn ->
              result = Instance.call(instance, "run", [i])
              send(parent, {:done, self(), i, result})
            end)
          end

        for _ <- 1..guests do
          receive do
            {:blocked, _pid} -> :ok
          after
            30_000 -> raise "guests stopped getting blocked"
          end
        end

        pids
      end)

    during = snapshot("all #{guests} blocked in host calls")

    {release_ns, results} =
      timed(fn ->
        case mode do
          :local -> Enum.each(pids, &send(&1, :release))
          :process -> ^guests = GenServer.call(holder, :release, 30_000)
        end

        for _ <- 1..guests do
          receive do
            {:done, _pid, i, result} -> {i, result}
          after
            30_000 -> raise "guests stopped finishing"
          end
        end
      end)

    finished = snapshot("all finished (instances still held)")
    wrong = Enum.reject(results, fn {i, result} -> result == {:ok, [i + 1]} end)

    # Drop every instance (and the module), then collect.
    instances = nil
    _ = instances
    :erlang.garbage_collect()
    Process.sleep(200)
    :erlang.garbage_collect()
    dropped = snapshot("instances dropped, after GC")

    peak = stop_sampler(sampler)
    if holder, do: GenServer.stop(holder)

    IO.puts("instantiate #{guests} instances: #{fmt(instantiate_ns)}")
    IO.puts("spawn #{guests} callers until all are blocked in the host call: #{fmt(block_ns)}")
    IO.puts("release them and receive all #{guests} results: #{fmt(release_ns)}")

    IO.puts(
      "results: #{guests - length(wrong)} of #{guests} correct" <>
        if(wrong == [], do: "", else: "; wrong: #{inspect(Enum.take(wrong, 3))}")
    )

    print_snapshots([before, idle, during, finished, dropped])

    IO.puts(
      "peaks (sampled every 5 ms): OS threads #{peak.threads}, VmRSS #{mib(peak.rss)}, " <>
        ":erlang.memory(:total) #{mib(peak.total)}"
    )

    per_instance = (idle.rss - before.rss) / guests
    per_waiting = (during.rss - idle.rss) / guests

    IO.puts(
      "RSS per idle instance: #{kib(per_instance)}; RSS added per guest blocked in a call " <>
        "(its fiber stack, caller process, ...): #{kib(per_waiting)}"
    )
  end

  defp describe(:local), do: "in the calling process (blocks in receive)"
  defp describe(:process), do: "in one handler GenServer (holds every call until release)"

  defp timed(fun) do
    t0 = System.monotonic_time(:nanosecond)
    result = fun.()
    {System.monotonic_time(:nanosecond) - t0, result}
  end

  defp snapshot(label) do
    %{
      label: label,
      threads: threads(),
      rss: rss(),
      total: :erlang.memory(:total),
      processes: :erlang.system_info(:process_count)
    }
  end

  defp print_snapshots(snapshots) do
    IO.puts(
      String.pad_trailing("when", 40) <>
        Enum.map_join(
          ~w(OS_threads VmRSS erlang_total processes),
          "",
          &String.pad_leading(&1, 14)
        )
    )

    Enum.each(snapshots, fn s ->
      IO.puts(
        String.pad_trailing(s.label, 40) <>
          Enum.map_join(
            ["#{s.threads}", mib(s.rss), mib(s.total), "#{s.processes}"],
            "",
            &String.pad_leading(&1, 14)
          )
      )
    end)
  end

  defp start_sampler do
    spawn_link(fn -> sample_loop(%{threads: 0, rss: 0, total: 0}) end)
  end

  defp stop_sampler(pid) do
    send(pid, {:stop, self()})

    receive do
      {:peak, peak} -> peak
    end
  end

  defp sample_loop(peak) do
    peak = %{
      threads: max(peak.threads, threads()),
      rss: max(peak.rss, rss()),
      total: max(peak.total, :erlang.memory(:total))
    }

    receive do
      {:stop, from} -> send(from, {:peak, peak})
    after
      5 -> sample_loop(peak)
    end
  end

  defp threads, do: length(File.ls!("/proc/self/task"))

  defp rss do
    [_, kb] = Regex.run(~r/VmRSS:\s+(\d+) kB/, File.read!("/proc/self/status"))
    String.to_integer(kb) * 1024
  end

  defp mib(bytes), do: "#{:erlang.float_to_binary(bytes / 1_048_576, decimals: 1)} MiB"
  defp kib(bytes), do: "#{:erlang.float_to_binary(bytes / 1024, decimals: 1)} KiB"

  defp fmt(ns) when ns < 1_000_000, do: "#{:erlang.float_to_binary(ns / 1_000, decimals: 1)} us"
  defp fmt(ns), do: "#{:erlang.float_to_binary(ns / 1_000_000, decimals: 1)} ms"
end

Wasmbeam.Bench.ManyGuests.run()
