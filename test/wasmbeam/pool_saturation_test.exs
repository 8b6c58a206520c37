defmodule Wasmbeam.PoolSaturationTest do
  # The saturated path of `Wasmbeam.Pool`: when no instance is free,
  # callers queue in an ETS table and a caller that checks an instance in
  # gives it to the oldest waiter itself (see "Caller side" in
  # lib/wasmbeam/pool.ex). These tests break a hand-over at every step
  # (by making the states a dying process would leave, with the pool's
  # tables, and by killing and suspending real processes), race timeouts
  # against hand-overs, and check that nothing is lost and no message is
  # left behind.
  use ExUnit.Case, async: true

  alias Wasmbeam.{Error, Module, Pool}

  @wat ~S"""
  (module
    (global $n (mut i32) (i32.const 0))
    (func (export "next") (result i32)
      global.get $n i32.const 1 i32.add global.set $n global.get $n)
    (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
    (func (export "div") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_s))
  """

  setup do
    %{module: Module.compile!(@wat)}
  end

  defp pool!(module, options) do
    name = :"pool_saturation_#{System.unique_integer([:positive])}"
    start_supervised!({Pool, Keyword.merge([name: name, module: module], options)})
    name
  end

  defp stats!(pool) do
    {:ok, stats} = Pool.stats(pool)
    stats
  end

  defp await_stats(pool, fun), do: Wasmbeam.Test.Wat.eventually(fn -> fun.(stats!(pool)) end)

  defp settled?(pool, size) do
    await_stats(pool, &(&1.in_use == 0 and &1.waiting == 0 and &1.idle == size))
  end

  # The pool's insides: its process, its counters and its waiting queue.
  defp internals(pool) do
    [{:meta, pid, _policy, counters, _ids}] = :ets.lookup(pool, :meta)
    %{waiters: waiters} = :persistent_term.get({Pool, pid})
    %{pid: pid, counters: counters, waiters: waiters}
  end

  # A process that checks out an instance and holds it until told; it
  # reports the instance's id (from the claim row) and, at the end, what
  # is left in its mailbox.
  defp hold(pool) do
    test = self()

    pid =
      spawn(fn ->
        result =
          Pool.checkout(pool, fn _instance ->
            send(test, {:holding, self()})

            receive do
              :release -> :ok
            end
          end)

        send(test, {:held_result, self(), result, mailbox()})
      end)

    assert_receive {:holding, ^pid}, 2_000
    [[id]] = :ets.match(pool, {{:held, :"$1"}, pid})
    {pid, id}
  end

  # A caller that waits for an instance (checkout timeout `timeout`), and
  # reports the result and its mailbox once the call returned.
  defp waiter(pool, timeout, fun \\ &Pool.call(&1, "add", [1, 2], &2)) do
    test = self()

    pid =
      spawn(fn ->
        result = fun.(pool, checkout_timeout: timeout)
        send(test, {:waited, self(), result, mailbox()})
      end)

    pid
  end

  defp mailbox, do: elem(Process.info(self(), :messages), 1)

  defp await_waiting(pool, n), do: assert(await_stats(pool, &(&1.waiting == n)))

  defp row_of(waiters, pid) do
    [row] = :ets.match_object(waiters, {:_, pid, :_})
    row
  end

  # Does what a giver does, up to `step`: :commit (the ticket's grant row
  # is in: the instance is the waiter's), :dequeued (and the ticket left
  # the queue). The wake-up is never sent.
  defp partial_give(pool, giver, waiter, id, step) do
    %{counters: counters, waiters: waiters} = internals(pool)
    {ticket, ^waiter, tag} = row_of(waiters, waiter)
    [{^id, instance_ref, store_ref}] = :ets.lookup(pool, id)
    grant = {{:g, ticket}, waiter, tag, {id, giver, instance_ref, store_ref}}
    true = :ets.insert_new(waiters, grant)
    :atomics.sub(counters, 1, 1)

    if step == :dequeued, do: true = :ets.delete(waiters, ticket)
    :ok
  end

  describe "hand-over" do
    test "waiters are served in the order they came", %{module: module} do
      pool = pool!(module, size: 1)
      {holder, _id} = hold(pool)
      test = self()

      waiters =
        for i <- 1..6 do
          pid =
            waiter(pool, 5_000, fn pool, options ->
              Pool.checkout(pool, fn _ -> send(test, {:served, i}) end, options)
            end)

          await_waiting(pool, i)
          pid
        end

      send(holder, :release)
      order = for _ <- 1..6, do: assert_receive({:served, i}, 2_000) && i
      assert order == Enum.to_list(1..6)

      for pid <- waiters do
        assert_receive {:waited, ^pid, {:served, _}, []}
      end

      assert_receive {:held_result, ^holder, :ok, []}
      assert settled?(pool, 1)
    end

    test "a checkin hands over without the pool process", %{module: module} do
      pool = pool!(module, size: 1)
      %{pid: pool_pid} = internals(pool)
      {holder, _id} = hold(pool)
      w = waiter(pool, 5_000)
      await_waiting(pool, 1)

      # Hold the pool process still: the hand-over must not need it.
      :erlang.suspend_process(pool_pid)

      try do
        send(holder, :release)
        assert_receive {:waited, ^w, {:ok, [3]}, []}, 2_000
      after
        :erlang.resume_process(pool_pid)
      end

      assert settled?(pool, 1)
    end

    test "an instance given to a waiter that is not running yet waits for it",
         %{module: module} do
      pool = pool!(module, size: 1)
      {holder, id} = hold(pool)
      w = waiter(pool, 60_000)
      await_waiting(pool, 1)
      :erlang.suspend_process(w)
      send(holder, :release)
      assert_receive {:held_result, ^holder, :ok, []}

      # The claim is the waiter's: nobody else gets the instance.
      assert Wasmbeam.Test.Wat.eventually(fn ->
               :ets.lookup(pool, {:held, id}) == [{{:held, id}, w}]
             end)

      assert {:error, %Error{kind: :timeout}} =
               Pool.call(pool, "add", [1, 1], checkout_timeout: 20)

      :erlang.resume_process(w)
      assert_receive {:waited, ^w, {:ok, [3]}, []}, 2_000
      assert settled?(pool, 1)
    end
  end

  describe "death at every step of a hand-over" do
    for step <- [:commit, :dequeued] do
      test "the giver dies after #{step}: the waiter gets the instance at once",
           %{module: module} do
        pool = pool!(module, size: 1)
        {giver, id} = hold(pool)
        test = self()

        w =
          waiter(pool, 60_000, fn pool, options ->
            Pool.checkout(
              pool,
              fn _ ->
                send(test, {:holding, self()})
                receive do: (:release -> {:ok, [3]})
              end,
              options
            )
          end)

        await_waiting(pool, 1)

        partial_give(pool, giver, w, id, unquote(step))
        Process.exit(giver, :kill)

        # Well before the waiter's 60 s deadline; and the instance is the
        # waiter's alone: the pool did not take it back as well.
        assert_receive {:holding, ^w}, 2_000

        assert {:error, %Error{kind: :timeout}} =
                 Pool.call(pool, "add", [1, 1], checkout_timeout: 50)

        assert %{in_use: 1, idle: 0} = stats!(pool)
        send(w, :release)
        assert_receive {:waited, ^w, {:ok, [3]}, []}, 2_000

        assert settled?(pool, 1),
               inspect(
                 {stats!(pool), :ets.tab2list(pool), :ets.tab2list(internals(pool).waiters),
                  :atomics.get(internals(pool).counters, 4)}
               )

        assert stats!(pool).discarded == 0
      end

      test "the waiter dies after #{step}: the instance comes back unused", %{module: module} do
        pool = pool!(module, size: 1, policy: :reset_after_trap)
        {giver, id} = hold(pool)
        w = waiter(pool, 60_000)
        await_waiting(pool, 1)

        partial_give(pool, giver, w, id, unquote(step))
        Process.exit(w, :kill)
        assert settled?(pool, 1)

        # The giver's later checkin finds its claim gone, and does nothing.
        send(giver, :release)
        assert_receive {:held_result, ^giver, :ok, []}
        assert settled?(pool, 1)
        # Given, never used: not replaced even under :reset_after_trap.
        assert %{discarded: 0} = stats!(pool)
        assert Pool.call(pool, "add", [2, 2]) == {:ok, [4]}
      end

      test "both die after #{step}: the instance comes back", %{module: module} do
        pool = pool!(module, size: 1)
        {giver, id} = hold(pool)
        w = waiter(pool, 60_000)
        await_waiting(pool, 1)

        partial_give(pool, giver, w, id, unquote(step))
        Process.exit(w, :kill)
        Process.exit(giver, :kill)

        assert settled?(pool, 1)
        assert Pool.call(pool, "add", [2, 2]) == {:ok, [4]}
      end
    end

    test "a waiter that dies while given, before it ran, gives the instance back",
         %{module: module} do
      pool = pool!(module, size: 1)
      {holder, _id} = hold(pool)
      w = waiter(pool, 60_000)
      await_waiting(pool, 1)
      :erlang.suspend_process(w)
      send(holder, :release)
      assert_receive {:held_result, ^holder, :ok, []}
      Process.exit(w, :kill)

      assert settled?(pool, 1)
      assert Pool.call(pool, "add", [2, 2]) == {:ok, [4]}
    end

    test "a holder killed while others wait: the next waiter gets its instance",
         %{module: module} do
      pool = pool!(module, size: 1)
      assert Pool.call(pool, "next", []) == {:ok, [1]}
      {holder, _id} = hold(pool)
      w = waiter(pool, 60_000, &Pool.call(&1, "next", [], &2))
      await_waiting(pool, 1)
      Process.exit(holder, :kill)

      assert_receive {:waited, ^w, {:ok, [2]}, []}, 2_000
      assert settled?(pool, 1)
    end

    test "a holder killed under :fresh: the waiter gets a new instance", %{module: module} do
      pool = pool!(module, size: 1, policy: :fresh)
      {holder, _id} = hold(pool)
      w = waiter(pool, 60_000, &Pool.call(&1, "next", [], &2))
      await_waiting(pool, 1)
      Process.exit(holder, :kill)

      assert_receive {:waited, ^w, {:ok, [1]}, []}, 2_000
      assert await_stats(pool, &(&1.in_use == 0 and &1.waiting == 0 and &1.discarded == 2))
    end

    test "a trap under :reset_after_trap hands a fresh instance to the waiter",
         %{module: module} do
      pool = pool!(module, size: 1, policy: :reset_after_trap)
      test = self()

      trapper =
        spawn(fn ->
          result =
            Pool.checkout(pool, fn instance ->
              Wasmbeam.Instance.call!(instance, "next", [])
              send(test, {:holding, self()})
              receive do: (:go -> Wasmbeam.Instance.call(instance, "div", [1, 0]))
            end)

          send(test, {:trapped, result})
        end)

      assert_receive {:holding, ^trapper}
      w = waiter(pool, 60_000, &Pool.call(&1, "next", [], &2))
      await_waiting(pool, 1)
      send(trapper, :go)

      assert_receive {:trapped, {:error, %Error{kind: :trap}}}
      assert_receive {:waited, ^w, {:ok, [1]}, []}, 2_000
      assert await_stats(pool, &(&1.in_use == 0 and &1.discarded == 1 and &1.idle == 1))
    end
  end

  describe "timeouts racing hand-overs" do
    test "a waiter whose deadline passes after it was given keeps the instance",
         %{module: module} do
      pool = pool!(module, size: 1)
      {giver, id} = hold(pool)
      w = waiter(pool, 100)
      await_waiting(pool, 1)

      # Given but never woken (the giver is stopped before its message):
      # at its deadline the waiter finds its row given, and takes it.
      partial_give(pool, giver, w, id, :dequeued)
      :erlang.suspend_process(giver)

      assert_receive {:waited, ^w, {:ok, [3]}, []}, 2_000
      Process.exit(giver, :kill)
      assert settled?(pool, 1)
    end

    test "short checkout timeouts against a stream of checkins", %{module: module} do
      pool = pool!(module, size: 2, max_waiting: 1_000)
      test = self()

      callers =
        for i <- 1..300 do
          spawn(fn ->
            result =
              Pool.checkout(
                pool,
                fn instance ->
                  # Hold a little, so that callers time out while others
                  # hand over.
                  Wasmbeam.Instance.call!(instance, "add", [i, i])
                  :erlang.yield()
                  :ok
                end,
                checkout_timeout: rem(i, 4)
              )

            send(test, {:done, self(), result, mailbox()})
          end)
        end

      results =
        for pid <- callers do
          assert_receive {:done, ^pid, result, []}, 10_000
          result
        end

      assert Enum.all?(results, &(&1 == :ok or match?({:error, %Error{kind: :timeout}}, &1)))
      assert settled?(pool, 2)
    end
  end

  describe "stray messages" do
    test "to a waiting caller: left alone, and nothing of the pool's is left", %{module: module} do
      pool = pool!(module, size: 1)
      {holder, _id} = hold(pool)
      w = waiter(pool, 5_000)
      await_waiting(pool, 1)
      %{waiters: waiters} = internals(pool)
      {_, ^w, tag} = row_of(waiters, w)

      # Lookalikes of the pool's messages, and plain junk.
      fake = make_ref()
      strays = [{fake, :"$given"}, {:DOWN, fake, :process, self(), :normal}, :junk]
      for message <- strays, do: send(w, message)

      send(holder, :release)
      assert_receive {:waited, ^w, {:ok, [3]}, mailbox}, 2_000
      assert mailbox == strays
      # A wake-up sent after the waiter was served goes nowhere.
      send(tag, {tag, :"$given"})
      assert settled?(pool, 1)
    end

    test "to the pool: ignored, or checked against the tables", %{module: module} do
      pool = pool!(module, size: 2)
      %{pid: pool_pid} = internals(pool)
      {holder, id} = hold(pool)

      for message <- [
            :"$sweep",
            {:"$in", id, self(), :ok},
            {:"$in", id, holder, :broken},
            {:"$in", 12_345, self(), :ok},
            {:DOWN, make_ref(), :process, holder, :normal},
            {make_ref(), :"$given"}
          ] do
        send(pool_pid, message)
      end

      # `{:"$in", id, holder, :broken}` looks like a real return: the pool
      # takes it at its word, and the holder's later checkin is ignored.
      send(holder, :release)
      assert_receive {:held_result, ^holder, :ok, []}
      assert await_stats(pool, &(&1.in_use == 0 and &1.instances == 2 and &1.waiting == 0))
      assert {:ok, [3]} = Pool.call(pool, "add", [1, 2])
    end
  end

  describe "bursts of failures" do
    test "callers killed at random while 8 instances are saturated", %{module: module} do
      pool = pool!(module, size: 8, max_waiting: 10_000)
      test = self()

      spawn_caller = fn ->
        spawn(fn ->
          for _ <- 1..50, do: {:ok, [3]} = Pool.call(pool, "add", [1, 2])
          send(test, {:finished, self(), mailbox()})
        end)
      end

      callers = for _ <- 1..400, do: spawn_caller.()

      # Kill every third caller, wherever it is: holding, giving, waiting,
      # being given.
      killed =
        for {pid, i} <- Enum.with_index(callers), rem(i, 3) == 0 do
          Process.exit(pid, :kill)
          pid
        end

      for pid <- callers -- killed do
        assert_receive {:finished, ^pid, []}, 30_000
      end

      assert settled?(pool, 8)
      assert %{instances: 8, discarded: 0} = stats!(pool)
      assert Pool.call(pool, "add", [1, 2]) == {:ok, [3]}
    end

    test "holders and waiters suspended and killed mid-flight", %{module: module} do
      pool = pool!(module, size: 2, max_waiting: 10_000)
      test = self()

      callers =
        for _ <- 1..200 do
          spawn(fn ->
            for _ <- 1..20, do: {:ok, [3]} = Pool.call(pool, "add", [1, 2])
            send(test, {:finished, self(), mailbox()})
          end)
        end

      # Stop some where they are, then kill them: a holder or giver
      # stopped mid-hand-over, a waiter stopped after it was given.
      victims = Enum.take_every(callers, 4)

      # (A victim that has finished already cannot be suspended.)
      for pid <- victims do
        try do
          :erlang.suspend_process(pid)
        rescue
          ArgumentError -> :finished
        end
      end

      for pid <- victims, do: Process.exit(pid, :kill)

      for pid <- callers -- victims do
        assert_receive {:finished, ^pid, []}, 30_000
      end

      assert settled?(pool, 2)
      assert Pool.call(pool, "add", [1, 2]) == {:ok, [3]}
    end
  end

  describe "capacity" do
    test "the queue's bound counts waiters only, and frees as they leave", %{module: module} do
      pool = pool!(module, size: 1, max_waiting: 2)
      {holder, _} = hold(pool)
      w1 = waiter(pool, 60_000)
      w2 = waiter(pool, 60_000)
      await_waiting(pool, 2)
      assert {:error, %Error{kind: :overloaded}} = Pool.call(pool, "add", [1, 2])

      # A waiter that dies leaves its place...
      monitor = Process.monitor(w2)
      Process.exit(w2, :kill)
      assert_receive {:DOWN, ^monitor, _, _, _}
      assert await_stats(pool, &(&1.waiting == 1))

      # ...and so does one that times out.
      assert {:error, %Error{kind: :timeout}} =
               Pool.call(pool, "add", [1, 2], checkout_timeout: 30)

      assert stats!(pool).waiting == 1
      w3 = waiter(pool, 60_000)
      await_waiting(pool, 2)
      assert {:error, %Error{kind: :overloaded}} = Pool.call(pool, "add", [1, 2])

      send(holder, :release)
      assert_receive {:waited, ^w1, {:ok, [3]}, []}, 2_000
      assert_receive {:waited, ^w3, {:ok, [3]}, []}, 2_000
      assert settled?(pool, 1)
    end

    test "stopping the pool ends every wait with :down at once", %{module: module} do
      pool = :"pool_saturation_stop_#{System.unique_integer([:positive])}"
      {:ok, _} = Pool.start_link(name: pool, module: module, size: 1)
      {_holder, _} = hold(pool)
      waiters = for _ <- 1..5, do: waiter(pool, 60_000)
      assert await_stats(pool, &(&1.waiting == 5))

      :ok = Pool.stop(pool)

      for pid <- waiters do
        assert_receive {:waited, ^pid, {:error, %Error{kind: :down}}, []}, 2_000
      end
    end

    test "a pool killed outright: waits end with :down, at once without a deadline",
         %{module: module} do
      pool = :"pool_saturation_kill_#{System.unique_integer([:positive])}"
      {:ok, pid} = Pool.start_link(name: pool, module: module, size: 1)
      Process.unlink(pid)
      {_holder, _} = hold(pool)
      forever = waiter(pool, :infinity)
      bounded = waiter(pool, 300)
      assert await_stats(pool, &(&1.waiting == 2))

      # No terminate/2: only a monitor sees this.
      Process.exit(pid, :kill)

      assert_receive {:waited, ^forever, {:error, %Error{kind: :down}}, []}, 2_000
      assert_receive {:waited, ^bounded, {:error, %Error{kind: :down}}, []}, 2_000
    end
  end
end
