defmodule Wasmbeam.StoreStateAnswersTest do
  # Regression (native review 2026-12, item 7 of the review, item 6 of the
  # issue): answers about a store's state (busy, usable) must not wait for
  # a running guest slice or a memory copy. The store's lock used to be
  # held across both, so another process's answer waited for the whole
  # slice (652 ms with epoch interruption off) or the whole copy.
  #
  # Each test compares the order in which processes report, not times.
  # Not async: both tests need the two schedulers to themselves.
  use ExUnit.Case, async: false

  alias Wasmbeam.{Engine, Error, Instance, Memory, Module, Native}

  @mib 1024 * 1024

  test "with epoch interruption off, a wait: false caller gets :busy while a long call runs" do
    engine = Engine.new!(epoch_interruption: false)

    wat = ~S[(module
      (func (export "work") (param $n i64)
        (loop $count
          (local.set $n (i64.sub (local.get $n) (i64.const 1)))
          (br_if $count (i64.ne (local.get $n) (i64.const 0)))))
      (func (export "nop")))]

    instance = Instance.new!(Module.compile!(engine, wat))
    test = self()

    # On scheduler 2: calls with wait: false until one answers :busy.
    # Before the long call starts they just run; while it runs, the answer
    # must be :busy at once. Started first, so that it loops on its own
    # scheduler whatever the long call does to scheduler 1.
    second =
      spawn_link(fn ->
        Process.flag(:scheduler, 2)
        :erlang.yield()
        send(test, {:second_caller_on, :erlang.system_info(:scheduler_id)})
        until_busy(instance, test)
      end)

    assert_receive {:second_caller_on, 2}, 5_000

    # On scheduler 1: a few hundred ms of guest work in one slice (nothing
    # interrupts it).
    spawn_link(fn ->
      Process.flag(:scheduler, 1)
      :erlang.yield()
      send(test, {:long_call_done, Instance.call(instance, "work", [500_000_000])})
    end)

    first =
      receive do
        {:second_caller, answer} -> {:second_caller, answer}
        {:long_call_done, result} -> {:long_call_done, result}
      after
        10_000 -> :nothing
      end

    send(second, :stop)

    assert {:second_caller, {:error, %Error{kind: :busy}}} = first

    assert_receive {:long_call_done, {:ok, []}}, 10_000
  end

  test "store_usable answers while a 256 MiB Memory.read of the same store runs" do
    # 4096 pages: 256 MiB.
    instance = Instance.new!(Module.compile!(~S[(module (memory (export "memory") 4096))]))
    {:ok, memory} = Instance.memory(instance, "memory")

    # A reference: a 64 MiB read of another store, started once the big
    # read is copying, ends well before the big read does.
    other = Instance.new!(Module.compile!(~S[(module (memory (export "memory") 1024))]))
    {:ok, other_memory} = Instance.memory(other, "memory")

    test = self()
    binaries = :erlang.memory(:binary)

    reader =
      spawn_link(fn ->
        {:ok, bytes} = Memory.read(memory, 0, 256 * @mib)
        send(test, {:read_done, byte_size(bytes)})
      end)

    # The reference reader waits on the other scheduler than the prober,
    # so that a prober blocked in the NIF cannot hold it back.
    reference =
      spawn_link(fn ->
        Process.flag(:scheduler, 2)
        :erlang.yield()

        receive do
          :go ->
            {:ok, bytes} = Memory.read(other_memory, 0, 64 * @mib)
            send(test, {:reference_read_done, byte_size(bytes)})
        end
      end)

    spawn_link(fn ->
      Process.flag(:scheduler, 1)
      :erlang.yield()
      # The big read has allocated its 256 MiB result, which it does with
      # the store in hand, just before it copies.
      wait_until(fn ->
        :erlang.memory(:binary) - binaries >= 240 * @mib or not Process.alive?(reader)
      end)

      send(reference, :go)
      send(test, {:usable, Native.store_usable(instance.store.ref)})
    end)

    reports = for _ <- 1..3, do: receive_report()

    assert match?([{:usable, true} | _], reports),
           "store_usable answered only after a 64 MiB read started with it had finished, " <>
             "so it waited for the 256 MiB read (reports in order: #{inspect(reports)})"

    assert {:read_done, 256 * @mib} in reports
    assert {:reference_read_done, 64 * @mib} in reports
  end

  defp until_busy(instance, test) do
    receive do
      :stop -> :ok
    after
      0 ->
        case Instance.call(instance, "nop", [], wait: false) do
          {:ok, []} -> until_busy(instance, test)
          answer -> send(test, {:second_caller, answer})
        end
    end
  end

  defp wait_until(condition) do
    if condition.(), do: :ok, else: wait_until(condition)
  end

  defp receive_report do
    receive do
      {tag, _} = report when tag in [:usable, :read_done, :reference_read_done] -> report
    after
      10_000 -> :no_report
    end
  end
end
