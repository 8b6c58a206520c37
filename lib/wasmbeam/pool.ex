defmodule Wasmbeam.Pool do
  @moduledoc """
  A supervised pool of instances of one module, for many concurrent
  callers.

  ## The model

  The pool process creates the instances and keeps the idle ones in a
  public ETS table. A caller **checks one out** and calls it directly, as a
  bare `Wasmbeam.Instance`, in its own process: the guest runs on the
  caller's scheduler and host functions run in the caller (so they see its
  process dictionary, logger metadata and test sandbox). The pool process
  is never in the call path:

    * checkout takes an idle instance straight from the table (no message
      round trip);
    * checkin of an instance that is kept gives it straight to the oldest
      waiting caller, or puts it back in the table, with no message to the
      pool process; an instance to be replaced (per the policy, or a
      broken one) goes to the pool process, off the caller's path;
    * when no instance is idle, the caller queues itself in a table and
      sleeps until a caller that checks an instance in hands it over, or
      its checkout timeout passes. The pool process is asked only while
      the pool can still grow (overflow), to create an instance.

  The pool links the module with its imports once (a
  `Wasmbeam.LinkedModule`), so creating an instance (at start, for
  overflow, for `:fresh` checkouts, after a trap) only creates it; imports
  that belong to a store (another instance's exports, defined globals or
  memories) are resolved for each instance instead.

  The pool monitors every holder: a caller that dies while holding an
  instance gives it back (`:reuse`; a call it was running is cancelled by
  the store) or has it replaced (other policies).

      children = [
        {Wasmbeam.Pool, name: MyApp.Plugins, module: module, size: 8, max_overflow: 4}
      ]

      {:ok, [result]} = Wasmbeam.Pool.call(MyApp.Plugins, "render", [ptr, len], timeout: 50)

      Wasmbeam.Pool.checkout(MyApp.Plugins, fn instance ->
        {:ok, memory} = Wasmbeam.Instance.memory(instance, "memory")
        :ok = Wasmbeam.Memory.write(memory, 0, input)
        Wasmbeam.Instance.call(instance, "run", [0, byte_size(input)])
      end)

  ## Policies

    * `:reuse` (default) - an instance goes back to the pool after use and
      keeps its state (globals, memory) between checkouts. The cheapest;
      for trusted guests whose state between calls does not matter.
    * `:reset_after_trap` - like `:reuse`, but an instance whose call
      trapped, timed out, ran out of fuel or was cancelled (or whose holder
      raised or died) is replaced by a fresh one, so a guest interrupted
      halfway never serves another caller.
    * `:fresh` - every checkout gets an instance nobody used before; used
      ones are thrown away and replaced by the pool process, off the
      caller's path. For untrusted guests: nothing leaks between callers.

  Whatever the policy, an instance whose store is poisoned, or was lost by a
  call stopped while its guest waited in host I/O, is replaced.
  The pool sees how a checkout ended from what the function returns: an
  `{:error, %Wasmbeam.Error{}}` of those kinds counts as a trap.

  ## Capacity and back-pressure

  `:size` instances are created at start and kept. When all are in use, up
  to `:max_overflow` more are created on demand and dropped when they come
  back idle. Beyond that, up to `:max_waiting` callers wait (each at most
  its checkout timeout, then a `:timeout` error); further callers get an
  `:overloaded` error at once, so load beyond capacity is refused, not
  queued without bound.

  Waiting callers are served first come, first served: while anyone
  waits, newcomers queue behind them, and an instance checked in goes to
  the oldest waiter. The one exception: a caller that arrives while an
  instance is being freed may take that instance ahead of the waiters
  (the freeing caller then serves the oldest waiter with the next
  instance that comes back), so a waiter can be overtaken at most once
  per checkin that raced with an arrival.

  ## Addressing a pool

  A pool named by an atom is found without messaging it (its ETS table has
  the same name). A pool addressed by pid or `{:via, ...}` / `{:global, ...}`
  costs one extra `GenServer.call` per checkout to find its table.
  """

  use GenServer

  require Logger

  alias Wasmbeam.{Error, Instance, Module, Native, StartOptions}

  @policies [:reuse, :fresh, :reset_after_trap]
  # Outcomes after which a guest may have stopped halfway through.
  @interrupted [:trap, :timeout, :out_of_fuel, :cancelled]
  # Outcomes after which the store cannot be trusted under any policy.
  @broken [:poisoned, :panic]
  @default_checkout_timeout 5_000
  # How long deaths are gathered before the queue is swept for them.
  @sweep_after 10

  @typedoc "A pool: its registered name (fast path) or any GenServer address."
  @type pool :: atom() | GenServer.server()

  @type policy :: :reuse | :fresh | :reset_after_trap

  @type option ::
          {:name, atom() | GenServer.name()}
          | {:module, Module.t() | binary()}
          | {:imports, Wasmbeam.Imports.t()}
          | {:instance_options, keyword()}
          | {:size, pos_integer()}
          | {:max_overflow, non_neg_integer()}
          | {:max_waiting, non_neg_integer()}
          | {:checkout_timeout, timeout()}
          | {:policy, policy()}

  @doc """
  Starts a pool linked to the caller. Returns `{:error, %Wasmbeam.Error{}}`
  for invalid options or when the module cannot be instantiated.

  ## Options

    * `:module` (required) - a `Wasmbeam.Module`, or wasm bytes / WAT text
    * `:imports`, `:instance_options` - for `Wasmbeam.Instance.new/3`
    * `:name` - an atom (fast checkout) or any GenServer name
    * `:size` - instances kept ready (default: the number of schedulers)
    * `:max_overflow` - extra instances created under load (default 0)
    * `:max_waiting` - callers that may wait for an instance (default 100)
    * `:checkout_timeout` - default for `checkout/3` in ms (default 5000)
    * `:policy` - `:reuse` (default), `:reset_after_trap` or `:fresh`

  ## Examples

      iex> module = Wasmbeam.Module.compile!(~S[(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))])
      iex> {:ok, _pid} = Wasmbeam.Pool.start_link(name: :doc_pool, module: module, size: 2)
      iex> Wasmbeam.Pool.call(:doc_pool, "add", [1, 2])
      {:ok, [3]}
      iex> {:error, %Wasmbeam.Error{kind: :argument}} = Wasmbeam.Pool.start_link(module: module, size: 0)
  """
  @spec start_link([option]) :: GenServer.on_start() | {:error, Error.t()}
  def start_link(options) when is_list(options) do
    with {:ok, config} <- parse_options(options) do
      name_options = if config.name, do: [name: config.name], else: []
      GenServer.start_link(__MODULE__, config, name_options)
    end
  end

  def start_link(other),
    do: {:error, Error.new(:argument, "options must be a keyword list, got: #{inspect(other)}")}

  @doc """
  A child specification, so that `{Wasmbeam.Pool, options}` can go in a
  supervision tree. Takes the options of `start_link/1` plus `:id`
  (default: the pool's `:name`, else `Wasmbeam.Pool`), `:restart`
  (default `:permanent`; `:transient` for a pool that is stopped with
  `stop/3` when its work is done) and `:shutdown` (default 5000 ms).

  ## Examples

      iex> spec = Wasmbeam.Pool.child_spec(name: MyApp.Plugins, module: Wasmbeam.Module.compile!("(module)"))
      iex> {spec.id, spec.restart}
      {MyApp.Plugins, :permanent}
      iex> Wasmbeam.Pool.child_spec(module: Wasmbeam.Module.compile!("(module)"), restart: :transient).restart
      :transient
  """
  @spec child_spec([
          option
          | {:id, term()}
          | {:restart, :permanent | :transient | :temporary}
          | {:shutdown, timeout() | :brutal_kill}
        ]) :: Supervisor.child_spec()
  def child_spec(options) when is_list(options) do
    %{
      id: Keyword.get_lazy(options, :id, fn -> Keyword.get(options, :name, __MODULE__) end),
      start: {__MODULE__, :start_link, [Keyword.drop(options, [:id, :restart, :shutdown])]},
      restart: Keyword.get(options, :restart, :permanent),
      shutdown: Keyword.get(options, :shutdown, 5_000),
      type: :worker
    }
  end

  @doc """
  Stops a pool: its instances are dropped, callers waiting for one get a
  `:down` error, and a caller still holding one finishes its call (the
  instance goes when it is released). Returns `:ok`, or a `:down` error
  if no pool runs as `pool` (an `:argument` error if `pool` is another
  kind of process, which is not stopped). A pool under a supervisor is
  restarted unless its child spec says `restart: :transient` (and `reason`
  is `:normal`) or `:temporary`; stop it through the supervisor
  (`Supervisor.terminate_child/2`) to keep it stopped.

  ## Examples

      iex> {:ok, pool} = Wasmbeam.Pool.start_link(module: Wasmbeam.Module.compile!("(module)"), size: 1)
      iex> Wasmbeam.Pool.stop(pool)
      :ok
      iex> {:error, %Wasmbeam.Error{kind: :down}} = Wasmbeam.Pool.stop(pool)
  """
  @spec stop(pool(), term(), timeout()) :: :ok | {:error, Error.t()}
  def stop(pool, reason \\ :normal, timeout \\ :infinity) do
    # Only a pool: stopping another process by mistake would be worse
    # than an error.
    with {:ok, timeout} <- Wasmbeam.Timeout.check(timeout, "stop/3's timeout"),
         :ok <- check_pool(pool) do
      GenServer.stop(pool, reason, timeout)
    end
  catch
    :exit, why -> {:error, Error.new(:down, "no pool #{inspect(pool)}: #{inspect(why)}")}
  end

  @doc """
  Checks an instance out, runs `fun` with it in the calling process, checks
  it back in and returns what `fun` returned. If no instance becomes free
  within the checkout timeout the result is a `:timeout` error; if the pool
  is at capacity with its waiting queue full, an `:overloaded` error. If
  `fun` raises, the instance is checked in (or replaced) and the exception
  propagates.

  ## Options

    * `:checkout_timeout` - ms to wait for an instance (default: the pool's)

  ## Examples

      iex> module = Wasmbeam.Module.compile!(~S[(module (global $n (mut i32) (i32.const 0)) (func (export "next") (result i32) global.get $n i32.const 1 i32.add global.set $n global.get $n))])
      iex> {:ok, pool} = Wasmbeam.Pool.start_link(module: module, size: 1)
      iex> Wasmbeam.Pool.checkout(pool, fn instance ->
      ...>   Wasmbeam.Instance.call!(instance, "next", []) ++ Wasmbeam.Instance.call!(instance, "next", [])
      ...> end)
      [1, 2]
  """
  @spec checkout(pool(), (Instance.t() -> result), keyword()) :: result | {:error, Error.t()}
        when result: term()
  def checkout(pool, fun, options \\ [])

  def checkout(pool, fun, options) when is_function(fun, 1) and is_list(options) do
    with {:ok, handle} <- handle(pool),
         {:ok, timeout} <- checkout_timeout(options),
         {:ok, lease} <- take(pool, handle, timeout) do
      try do
        fun.(lease.instance)
      catch
        kind, reason ->
          checkin(handle, lease, :crashed)
          :erlang.raise(kind, reason, __STACKTRACE__)
      else
        result ->
          checkin(handle, lease, result)
          result
      end
    end
  end

  def checkout(_pool, fun, options),
    do:
      {:error,
       Error.new(
         :argument,
         "expected a function of one argument and a keyword list, got: #{inspect(fun)}, #{inspect(options)}"
       )}

  @doc """
  Calls the export `name` on an instance from the pool: `checkout/3` around
  `Wasmbeam.Instance.call/4`. `options` are the call's (`:timeout`,
  `:fuel`, see `Wasmbeam.CallOptions`) plus `:checkout_timeout`.

  ## Examples

      iex> module = Wasmbeam.Module.compile!(~S[(module (func (export "div") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_s))])
      iex> {:ok, pool} = Wasmbeam.Pool.start_link(module: module, size: 1)
      iex> Wasmbeam.Pool.call(pool, "div", [7, 2])
      {:ok, [3]}
      iex> {:error, %Wasmbeam.Error{kind: :trap, trap: :integer_division_by_zero}} = Wasmbeam.Pool.call(pool, "div", [7, 0])
  """
  @spec call(pool(), String.t(), [Wasmbeam.Types.value()], keyword()) ::
          {:ok, [Wasmbeam.Types.value()]} | {:error, Error.t()}
  def call(pool, name, args, options \\ []) when is_list(options) do
    {checkout_options, call_options} = Keyword.split(options, [:checkout_timeout])

    checkout(pool, &Instance.call(&1, name, args, call_options), checkout_options)
  end

  @doc "Like `call/4`, but returns the results or raises `Wasmbeam.Error`."
  @spec call!(pool(), String.t(), [Wasmbeam.Types.value()], keyword()) ::
          [Wasmbeam.Types.value()]
  def call!(pool, name, args, options \\ []),
    do: call(pool, name, args, options) |> Error.unwrap!()

  @doc """
  The pool's figures: `size`, `max_overflow`, `policy`, `instances`
  (alive now, overflow included), `idle`, `in_use`, `waiting`, and the
  totals `created` and `discarded` since start. Checkouts that took the fast
  path are counted as soon as the pool process hears of them, so `in_use`
  may lag by a few microseconds.

  ## Examples

      iex> {:ok, pool} = Wasmbeam.Pool.start_link(module: Wasmbeam.Module.compile!("(module)"), size: 2)
      iex> {:ok, stats} = Wasmbeam.Pool.stats(pool)
      iex> Map.take(stats, [:size, :instances, :idle, :in_use, :waiting, :created, :discarded])
      %{size: 2, instances: 2, idle: 2, in_use: 0, waiting: 0, created: 2, discarded: 0}
  """
  @spec stats(pool()) :: {:ok, map()} | {:error, Error.t()}
  def stats(pool) do
    with :ok <- check_pool(pool), do: stats_of(pool)
  end

  @doc "Like `stats/1`, but raises `Wasmbeam.Error`."
  @spec stats!(pool()) :: map()
  def stats!(pool), do: stats(pool) |> Error.unwrap!()

  defp stats_of(pool) do
    case pool_call(pool, :"$stats") do
      {:ok, %{size: _}} = ok -> ok
      {:ok, _other} -> {:error, Error.new(:argument, "#{inspect(pool)} is not a pool")}
      {:error, _} = error -> error
    end
  end

  ## Caller side
  #
  # The table holds a row `{id, instance_ref, store_ref}` per instance,
  # a claim row `{{:held, id}, holder_pid}` per instance in use, and
  # `{:meta, pool_pid, policy, counters, ids}` (`ids`: the pooled
  # instances; `counters`: an `:atomics` array, see below). Taking an
  # instance is inserting its claim with `:ets.insert_new/2` (atomic: one
  # claimer wins); giving it back is deleting the claim. Rows hold only
  # references, and what is the same for every checkout (the module, the
  # waiting queue's table, limits) is in `:persistent_term`: copying a
  # whole `%Instance{}` out of ETS costs more than the call itself. The
  # pool process watches every caller once (it is told before the
  # caller's first claim), so when a holder dies the pool finds its claims
  # and takes the instances back.
  #
  # The waiting queue is a second table (an `ordered_set`). A waiting
  # caller's row is `{ticket, pid, alias}`: `ticket` comes from an atomic
  # counter (the order of arrival; integers sort first, so the table's
  # first key is the oldest waiter), `alias` is where it is woken. A
  # caller that checks an instance in while others wait gives it to the
  # oldest waiter itself: it inserts the ticket's grant row
  # `{{:g, ticket}, pid, alias, {id, giver, instance_ref, store_ref}}` with
  # `:ets.insert_new/2` (the commit point: a waiter that gives up inserts
  # the same key with `:withdrawn`, and exactly one of the two wins), takes
  # the ticket off the queue and sends the alias the instance. The waiter
  # moves the claim to itself and deletes the grant row. The pool process
  # is not involved.
  #
  # Counters: `@waiting`, tickets in the queue (up before a ticket is
  # inserted, down after it is taken out, so 0 means that none waits);
  # `@ticket`; `@instances`, written by the pool; `@free`, pooled
  # instances without a claim (up before a claim is deleted, down after
  # one is taken). See `dequeue/3` for why always in that order.

  @waiting 1
  @ticket 2
  @instances 3
  @free 4

  defp handle(pool) when is_atom(pool) do
    case :ets.lookup(pool, :meta) do
      [{:meta, pid, policy, counters, ids}] ->
        case :persistent_term.get({__MODULE__, pid}, nil) do
          nil ->
            not_running(pool)

          shared ->
            {:ok,
             %{
               table: pool,
               pid: pid,
               policy: policy,
               counters: counters,
               ids: ids,
               shared: shared
             }}
        end

      [] ->
        not_running(pool)
    end
  rescue
    # Not a table name: maybe a pool started without an atom name.
    ArgumentError -> handle({:by_call, pool})
  end

  defp handle(pool) do
    pool = with {:by_call, name} <- pool, do: name

    with :ok <- check_pool(pool) do
      ask_handle(pool)
    end
  end

  # Every running pool has its shared data under `{Wasmbeam.Pool, pid}`: a
  # local process without one is not a pool, and is not sent a request it
  # would not understand (an Agent would crash on it).
  defp check_pool(pool) do
    case GenServer.whereis(pool) do
      pid when is_pid(pid) and node(pid) == node() ->
        cond do
          :persistent_term.get({__MODULE__, pid}, nil) != nil -> :ok
          Process.alive?(pid) -> {:error, Error.new(:argument, "#{inspect(pool)} is not a pool")}
          true -> not_running(pool)
        end

      nil ->
        not_running(pool)

      _remote ->
        :ok
    end
  end

  defp ask_handle(pool) do
    case pool_call(pool, :"$handle") do
      {:ok, %{table: _, pid: _} = handle} -> {:ok, handle}
      {:ok, _other} -> {:error, Error.new(:argument, "#{inspect(pool)} is not a pool")}
      {:error, _} = error -> error
    end
  end

  defp pool_call(pool, message) do
    {:ok, GenServer.call(pool, message)}
  catch
    :exit, _ -> not_running(pool)
  end

  defp not_running(pool),
    do: {:error, Error.new(:down, "no pool is running as #{inspect(pool)}")}

  defp checkout_timeout(options) do
    case Keyword.get(options, :checkout_timeout) do
      nil -> {:ok, nil}
      timeout -> Wasmbeam.Timeout.check(timeout, ":checkout_timeout")
    end
  end

  defp take(pool, handle, timeout) do
    watched_by(handle.pid)

    # While callers wait, newcomers queue behind them instead of taking
    # instances as they come back: first come, first served.
    taken = first_claim(handle)

    result =
      case taken do
        {id, instance_ref, store_ref} -> {:ok, id, instance_ref, store_ref}
        :none -> wait_span(pool, handle, timeout || handle.shared.checkout_timeout)
      end

    case result do
      {:ok, id, instance_ref, store_ref} ->
        store = %Wasmbeam.Store{ref: store_ref, engine: handle.shared.module.engine}

        {:ok, %{id: id, instance: lease_instance(handle.shared.module, instance_ref, store)}}

      {:error, _} = error ->
        error
    end
  rescue
    # The table went away with its pool.
    ArgumentError -> not_running(handle.pid)
  end

  defp first_claim(handle) do
    if :atomics.get(handle.counters, @waiting) == 0,
      do: claim(handle.table, handle.counters, handle.ids, self()),
      else: :none
  end

  # The pool must monitor a caller before the caller's first claim or
  # wait, so that no instance can be held, and no row can wait, for a
  # process the pool does not watch.
  defp watched_by(pool_pid) do
    key = {__MODULE__, pool_pid}

    unless Process.get(key) do
      send(pool_pid, {:"$watch", self()})
      Process.put(key, true)
    end
  end

  # Claims the first free instance, starting at a place that depends on
  # the scheduler so that concurrent callers rarely race for the same one.
  # The `@free` counter (pooled instances without a claim) spares the
  # scan when none is free: under saturation, nearly always.
  defp claim(table, counters, ids, pid) do
    count = tuple_size(ids)

    if count == 0 or :atomics.get(counters, @free) <= 0,
      do: :none,
      else:
        claim(table, counters, ids, pid, rem(:erlang.system_info(:scheduler_id), count), count)
  end

  defp claim(_table, _counters, _ids, _pid, _index, 0), do: :none

  defp claim(table, counters, ids, pid, index, left) do
    id = elem(ids, index)
    next = if index + 1 == tuple_size(ids), do: 0, else: index + 1

    if :ets.insert_new(table, {{:held, id}, pid}) do
      case :ets.lookup(table, id) do
        [{^id, instance_ref, store_ref}] ->
          :atomics.sub(counters, @free, 1)
          {id, instance_ref, store_ref}

        # Discarded since `ids` was read.
        [] ->
          :ets.delete_object(table, {{:held, id}, pid})
          claim(table, counters, ids, pid, next, left - 1)
      end
    else
      claim(table, counters, ids, pid, next, left - 1)
    end
  end

  defp wait_span(pool, handle, timeout) do
    Wasmbeam.Telemetry.span(
      [:wasmbeam, :pool, :wait],
      %{pool: pool, pool_pid: handle.pid},
      fn -> wait_for_instance(handle, timeout) end,
      &%{error: Wasmbeam.Telemetry.error(&1)}
    )
  end

  # No instance was free. While the pool may still grow (overflow, or an
  # instance being replaced), the pool process decides: it creates one for
  # this caller or says to queue. At capacity (the saturated case), the
  # caller queues without asking anyone.
  defp wait_for_instance(handle, timeout) do
    deadline = deadline(timeout)

    if :atomics.get(handle.counters, @instances) < handle.shared.capacity do
      case GenServer.call(handle.pid, {:"$checkout", timeout}, :infinity) do
        :queue -> enqueue(handle, deadline)
        other -> other
      end
    else
      enqueue(handle, deadline)
    end
  catch
    :exit, _ -> not_running(handle.pid)
  end

  defp deadline(:infinity), do: :infinity
  defp deadline(ms), do: System.monotonic_time(:millisecond) + ms

  defp remaining(:infinity), do: :infinity
  defp remaining(deadline), do: max(deadline - System.monotonic_time(:millisecond), 0)

  defp enqueue(handle, deadline) do
    %{counters: counters, shared: shared} = handle

    case :atomics.add_get(counters, @waiting, 1) do
      waiting when waiting > shared.max_waiting ->
        :atomics.sub(counters, @waiting, 1)
        overloaded(handle, waiting - 1)

      _ ->
        # The tag is an alias: a giver wakes the caller through it, and
        # once it is gone nothing sent to it arrives. A pool that stops
        # tells its waiters through it (`terminate/2`). Not a monitor of
        # the pool: monitoring and demonitoring are signals the pool
        # process would handle for every wait, the funnel this design
        # removes (in one run, twice the throughput at 16 callers). A wait
        # without a deadline monitors all the same, so that a pool killed
        # outright (no `terminate/2`) cannot leave it waiting forever.
        tag = tag(handle.pid, deadline)
        ticket = :atomics.add_get(counters, @ticket, 1)
        :ets.insert(shared.waiters, {ticket, self(), tag})

        # An instance may have been freed between the first look and the
        # row: look again now that givers can see the row (a giver counts
        # its instance free before it looks for rows; one of the two sees
        # the other).
        case claim(handle.table, handle.counters, handle.ids, self()) do
          :none ->
            await(handle, ticket, tag, deadline)

          {id, instance_ref, store_ref} = taken ->
            if withdraw(handle, ticket, tag) do
              {:ok, id, instance_ref, store_ref}
            else
              # Given one meanwhile: keep that one, put this one back.
              release(env(handle), taken, self())
              accept(handle, ticket, tag, deadline)
            end
        end
    end
  end

  defp overloaded(handle, waiting) do
    instances = :atomics.get(handle.counters, @instances)

    Wasmbeam.Telemetry.execute(
      [:wasmbeam, :pool, :overloaded],
      %{instances: instances, waiting: waiting},
      %{pool: handle.shared.name || handle.pid, pool_pid: handle.pid}
    )

    {:error,
     Error.new(
       :overloaded,
       "all #{instances} instances are in use and #{waiting} callers wait " <>
         "(max_waiting: #{handle.shared.max_waiting})"
     )}
  end

  defp tag(pool_pid, :infinity), do: :erlang.monitor(:process, pool_pid, alias: :demonitor)
  defp tag(_pool_pid, _deadline), do: :erlang.alias()

  defp await(handle, ticket, tag, deadline) do
    receive do
      # Whoever wakes a waiter has taken its ticket off the queue already.
      {^tag, :"$given", id, _giver, instance_ref, store_ref} ->
        taken(handle, ticket, tag, id, instance_ref, store_ref, :dequeued)

      {^tag, :"$down"} ->
        forget(tag)
        not_running(handle.pid)

      {:DOWN, ^tag, _, _, _} ->
        not_running(handle.pid)
    after
      remaining(deadline) ->
        if withdraw(handle, ticket, tag),
          do: {:error, Error.new(:timeout, "no instance of the pool became free in time")},
          else: accept(handle, ticket, tag, deadline)
    end
  end

  # Leaves the queue, unless a giver got there first: both insert the
  # ticket's grant row with `:ets.insert_new/2`, and one of them wins.
  defp withdraw(handle, ticket, tag) do
    waiters = handle.shared.waiters

    if :ets.insert_new(waiters, {{:g, ticket}, self(), tag, :withdrawn}) do
      dequeue(waiters, handle.counters, ticket)
      :ets.delete(waiters, {:g, ticket})
      forget(tag)
      true
    else
      false
    end
  end

  # Given an instance but not woken (yet): the grant row says which.
  defp accept(handle, ticket, tag, deadline) do
    case :ets.lookup(handle.shared.waiters, {:g, ticket}) do
      [{_, _, _, {id, _giver, instance_ref, store_ref}}] ->
        taken(handle, ticket, tag, id, instance_ref, store_ref, :queued)

      # Never expected (only this process deletes its grant row); queue
      # again.
      _ ->
        forget(tag)
        enqueue(handle, deadline)
    end
  end

  # The claim moves to this process (from the giver, or from the pool if
  # it finished the hand-over of a giver that died: see `holder_died/2`),
  # then the rows go, and the wake-up, sent or not, is dropped.
  defp taken(handle, ticket, tag, id, instance_ref, store_ref, queued?) do
    waiters = handle.shared.waiters
    :ets.insert(handle.table, {{:held, id}, self()})
    if queued? == :queued, do: dequeue(waiters, handle.counters, ticket)
    :ets.delete(waiters, {:g, ticket})
    forget(tag)
    {:ok, id, instance_ref, store_ref}
  end

  # Once the alias is gone nothing sent to it arrives; wake-ups that
  # arrived before (a giver's, and the pool's if it finished a hand-over
  # for a giver that died) are taken out of the mailbox.
  defp forget(tag) do
    # An alias made by `monitor/3` goes with its monitor.
    :erlang.demonitor(tag, [:flush])
    :erlang.unalias(tag)
    flush(tag)
  end

  defp flush(tag) do
    receive do
      {^tag, :"$given", _, _, _, _} -> flush(tag)
      {^tag, :"$down"} -> flush(tag)
    after
      0 -> :ok
    end
  end

  # Takes a ticket off the queue; whoever does (the giver, the waiter,
  # the pool for a dead waiter) counts it out. Counters change before
  # what they count appears and after it goes, so a process killed in
  # between leaves a count too high, never too low: a count too high costs
  # a look at the queue, one too low would leave a caller waiting beside
  # a free instance.
  defp dequeue(waiters, counters, ticket) do
    if :ets.take(waiters, ticket) != [], do: :atomics.sub(counters, @waiting, 1)
  end

  defp move_claim(table, id, from, to) do
    :ets.select_replace(table, [{{{:held, id}, from}, [], [{:const, {{:held, id}, to}}]}])
  end

  # What giving and freeing need, from the caller's handle or the pool's
  # state.
  defp env(%{shared: shared} = handle),
    do: %{table: handle.table, waiters: shared.waiters, counters: handle.counters}

  # Lets go of a pooled instance (`{id, instance_ref, store_ref}`),
  # claimed by `holder` (a checking-in caller, or the pool): to the oldest
  # waiting caller if there is one, else back to the free instances.
  # Returns `:given` or `:freed`.
  defp release(env, item, holder) do
    if :atomics.get(env.counters, @waiting) > 0 and give(env, item, holder) == :given,
      do: :given,
      else: free(env, item, holder)
  end

  # Frees the instance (counts it free), then looks for waiting rows: a
  # caller that queued while this one was freeing reads the free count
  # after its row is in (see `enqueue/2`), so one of the two sees the
  # other. If a row waits, the instance is taken back (if nobody else took
  # it) and given.
  defp free(env, {id, _, _} = item, holder) do
    :atomics.add(env.counters, @free, 1)

    if :ets.delete_object(env.table, {{:held, id}, holder}) do
      if :atomics.get(env.counters, @waiting) > 0 and waiting_row?(env.waiters) and
           :ets.insert_new(env.table, {{:held, id}, holder}) do
        :atomics.sub(env.counters, @free, 1)

        case give(env, item, holder) do
          :given -> :given
          :none -> free(env, item, holder)
        end
      else
        :freed
      end
    else
      # The claim moved on (a forged return took it): not ours to free.
      :atomics.sub(env.counters, @free, 1)
      :freed
    end
  end

  # Rows: `ticket` (an integer) while a caller waits, `{:g, ticket}` once
  # it was given an instance or withdrew. Integers sort before tuples, so
  # the queue's head is the table's first key.
  defp waiting_row?(waiters), do: waiting_row?(waiters, :ets.first(waiters))

  defp waiting_row?(waiters, ticket) when is_integer(ticket),
    do:
      not :ets.member(waiters, {:g, ticket}) or
        waiting_row?(waiters, :ets.next(waiters, ticket))

  defp waiting_row?(_waiters, _end_or_grant), do: false

  # Gives an instance (claimed by `giver`) to the oldest waiting caller:
  # inserts the ticket's grant row (the commit point; it says which
  # instance, so a giver that dies next loses nothing), takes the ticket
  # off the queue and wakes the caller with what it needs. The waiter
  # moves the claim to itself; until then the claim stays the giver's.
  defp give(env, item, giver), do: give(env, item, giver, :ets.first(env.waiters))

  defp give(env, {id, instance_ref, store_ref} = item, giver, ticket) when is_integer(ticket) do
    waiters = env.waiters

    with [{^ticket, pid, tag}] <- :ets.lookup(waiters, ticket),
         true <-
           :ets.insert_new(
             waiters,
             {{:g, ticket}, pid, tag, {id, giver, instance_ref, store_ref}}
           ) do
      dequeue(waiters, env.counters, ticket)
      send(tag, {tag, :"$given", id, giver, instance_ref, store_ref})
      :given
    else
      # Given by another giver, withdrawn, or gone: the next one.
      _ -> give(env, item, giver, :ets.next(waiters, ticket))
    end
  end

  defp give(_env, _item, _giver, _end_or_grant), do: :none

  # The common case, a clean return of a pooled (not overflow) instance
  # under `:reuse`/`:reset_after_trap`, is handled here: the instance goes
  # to the oldest waiting caller or back to the free ones, with no message
  # to the pool. Every other return goes through the pool process, which
  # keeps or replaces the instance.
  defp checkin(handle, lease, result) do
    outcome = outcome(result)

    if outcome == :ok and handle.policy != :fresh and lease.id > 0 do
      %{ref: instance_ref, store: %{ref: store_ref}} = lease.instance
      release(env(handle), {lease.id, instance_ref, store_ref}, self())
    else
      send(handle.pid, {:"$in", lease.id, self(), outcome})
    end

    :ok
  rescue
    # The pool is gone, and its tables with it.
    ArgumentError -> :ok
  end

  defp outcome(:crashed), do: :interrupted
  defp outcome({:error, %Error{kind: kind}}) when kind in @broken, do: :broken
  defp outcome({:error, %Error{kind: kind}}) when kind in @interrupted, do: :interrupted
  defp outcome(_result), do: :ok

  ## Options

  defp parse_options(options) do
    known = [
      :name,
      :module,
      :imports,
      :instance_options,
      :size,
      :max_overflow,
      :max_waiting,
      :checkout_timeout,
      :policy
    ]

    with :ok <- check_keys(options, known),
         {:ok, module} <- StartOptions.module(Keyword.get(options, :module)),
         {:ok, size} <- integer_option(options, :size, System.schedulers_online(), 1),
         {:ok, max_overflow} <- integer_option(options, :max_overflow, 0, 0),
         {:ok, max_waiting} <- integer_option(options, :max_waiting, 100, 0),
         {:ok, checkout_timeout} <-
           checkout_timeout(
             checkout_timeout: Keyword.get(options, :checkout_timeout, @default_checkout_timeout)
           ),
         {:ok, policy} <- policy_option(Keyword.get(options, :policy, :reuse)),
         {:ok, instance_options} <- StartOptions.list(options, :instance_options) do
      {:ok,
       %{
         name: Keyword.get(options, :name),
         module: module,
         imports: Keyword.get(options, :imports, %{}),
         instance_options: instance_options,
         size: size,
         max_overflow: max_overflow,
         max_waiting: max_waiting,
         checkout_timeout: checkout_timeout,
         policy: policy
       }}
    end
  end

  defp check_keys(options, known) do
    if Enum.all?(options, &match?({key, _} when is_atom(key), &1)) do
      case Enum.uniq(Keyword.keys(options)) -- known do
        [] -> :ok
        unknown -> {:error, Error.new(:argument, "unknown pool options: #{inspect(unknown)}")}
      end
    else
      {:error, Error.new(:argument, "options must be a keyword list, got: #{inspect(options)}")}
    end
  end

  defp integer_option(options, key, default, min) do
    case Keyword.get(options, key, default) do
      n when is_integer(n) and n >= min ->
        {:ok, n}

      other ->
        {:error,
         Error.new(
           :argument,
           "#{inspect(key)} must be an integer >= #{min}, got: #{inspect(other)}"
         )}
    end
  end

  defp policy_option(policy) when policy in @policies, do: {:ok, policy}

  defp policy_option(other),
    do:
      {:error,
       Error.new(
         :argument,
         ":policy must be one of #{inspect(@policies)}, got: #{inspect(other)}"
       )}

  ## Pool process

  @impl true
  def init(config) do
    Process.flag(:trap_exit, true)
    # Overflow, `:fresh` and replacements wait on this process: at normal
    # priority it would get one turn in as many as there are callers.
    Process.flag(:priority, :high)
    table = new_table(config.name)
    counters = :atomics.new(4, signed: true)
    # `write_concurrency` makes an `ordered_set` a contention-adapting
    # tree: with one lock, throughput at 1,000 callers fell to a third
    # (in one run).
    waiters = :ets.new(__MODULE__.Waiters, [:ordered_set, :public] ++ concurrency())
    :ets.insert(table, {:meta, self(), config.policy, counters, {}})

    :persistent_term.put({__MODULE__, self()}, %{
      module: config.module,
      waiters: waiters,
      name: config.name,
      capacity: config.size + config.max_overflow,
      max_waiting: config.max_waiting,
      checkout_timeout: config.checkout_timeout
    })

    state =
      Map.merge(config, %{
        linked: link(config),
        table: table,
        waiters: waiters,
        counters: counters,
        # every live instance: id -> instance (overflow ones have ids < 0)
        instances: %{},
        # callers the pool monitors: monitor -> pid
        watched: %{},
        # a `:"$sweep"` message is on its way
        sweeping: false,
        next_id: 1,
        created: 0,
        discarded: 0
      })

    case fill(state, config.size) do
      {:ok, state} ->
        {:ok, state}

      {:error, error} ->
        :persistent_term.erase({__MODULE__, self()})
        # start_link/1 returns `{:error, error}`; unlinking first keeps the
        # exit signal that follows from killing a caller that does not
        # trap exits (bad input must be an error, not a crash).
        Wasmbeam.Starter.unlink()
        {:stop, error}
    end
  end

  @impl true
  def terminate(_reason, state) do
    :persistent_term.erase({__MODULE__, self()})

    # Waiting callers learn at once that the pool is gone.
    for {ticket, _pid, tag} <- :ets.tab2list(state.waiters),
        is_integer(ticket),
        do: send(tag, {tag, :"$down"})

    :ok
  end

  defp new_table(name) when is_atom(name) and name != nil,
    do: :ets.new(name, [:set, :public, :named_table] ++ concurrency())

  defp new_table(_name), do: :ets.new(__MODULE__, [:set, :public] ++ concurrency())

  defp concurrency, do: [read_concurrency: true, write_concurrency: true]

  defp fill(state, 0), do: {:ok, state}

  defp fill(state, count) do
    with {:ok, _id, state} <- create(state, nil, false), do: fill(state, count - 1)
  end

  # Links the module with its imports once, so that each instance is only
  # created (Wasmtime's InstancePre). Imports that belong to a store
  # (another instance's exports, defined memories...) cannot be linked
  # ahead: such a pool resolves them for each instance instead.
  defp link(config) do
    wasi? = Keyword.has_key?(config.instance_options, :wasi)

    case Wasmbeam.LinkedModule.new(config.module, config.imports, wasi: wasi?) do
      {:ok, linked} -> linked
      {:error, _} -> nil
    end
  end

  # The one place instances are made: from the linked module when there
  # is one. A new instance is claimed for `holder` (or free when nil);
  # only pooled ones are listed for claims.
  defp create(state, holder, overflow?) do
    made =
      if state.linked,
        do: Instance.new(state.linked, %{}, state.instance_options),
        else: Instance.new(state.module, state.imports, state.instance_options)

    case made do
      {:ok, instance} ->
        id = if overflow?, do: -state.next_id, else: state.next_id
        if holder, do: :ets.insert(state.table, {{:held, id}, holder})
        :ets.insert(state.table, {id, instance.ref, instance.store.ref})

        state = %{
          state
          | instances: Map.put(state.instances, id, instance),
            next_id: state.next_id + 1,
            created: state.created + 1
        }

        :atomics.put(state.counters, @instances, map_size(state.instances))
        if holder == nil and not overflow?, do: :atomics.add(state.counters, @free, 1)
        {:ok, id, if(overflow?, do: state, else: publish_ids(state))}

      {:error, _} = error ->
        error
    end
  end

  defp publish_ids(state) do
    ids = state.instances |> Map.keys() |> Enum.filter(&(&1 > 0)) |> List.to_tuple()
    :ets.update_element(state.table, :meta, {5, ids})
    state
  end

  defp reply_instance(state, from, id) do
    instance = state.instances[id]
    GenServer.reply(from, {:ok, id, instance.ref, instance.store.ref})
  end

  defp pooled_ids(state), do: :ets.lookup_element(state.table, :meta, 5)

  defp waiting_count(state), do: :atomics.get(state.counters, @waiting)

  # Tickets still waiting (not given, not withdrawn), read from the queue
  # itself: the counter can be too high after a kill (see `dequeue/3`).
  defp waiting_rows(waiters) do
    tickets = :ets.select(waiters, [{{:"$1", :_, :_}, [{:is_integer, :"$1"}], [:"$1"]}])
    Enum.count(tickets, &(not :ets.member(waiters, {:g, &1})))
  end

  @impl true
  def handle_call(:"$handle", _from, state) do
    {:reply,
     %{
       table: state.table,
       pid: self(),
       policy: state.policy,
       counters: state.counters,
       ids: pooled_ids(state),
       shared: :persistent_term.get({__MODULE__, self()})
     }, state}
  end

  def handle_call(:"$stats", _from, state) do
    in_use = :ets.select_count(state.table, [{{{:held, :_}, :_}, [], [true]}])
    instances = map_size(state.instances)

    {:reply,
     %{
       size: state.size,
       max_overflow: state.max_overflow,
       policy: state.policy,
       instances: instances,
       idle: instances - in_use,
       in_use: in_use,
       waiting: waiting_rows(state.waiters),
       created: state.created,
       discarded: state.discarded
     }, state}
  end

  def handle_call({:"$checkout", timeout}, {pid, _} = from, state) do
    case checkout_timeout(checkout_timeout: timeout) do
      {:ok, _timeout} -> checkout_or_queue(pid, from, state)
      {:error, _} = error -> {:reply, error, state}
    end
  end

  # A request meant for another kind of process (`Wasmbeam.Instance.Server.info/1`
  # given a pool, say) is answered, not a crash.
  def handle_call(request, _from, state) do
    {:reply, {:error, Error.new(:argument, "not a request for a pool: #{inspect(request)}")},
     state}
  end

  # Nobody casts to a pool.
  @impl true
  def handle_cast(request, state) do
    Logger.debug("Wasmbeam.Pool ignored the cast #{inspect(request)}")
    {:noreply, state}
  end

  # A caller found no free instance while the pool was below its
  # capacity: grow, or tell it to queue (the caller queues itself, and
  # refuses itself with `:overloaded` when the queue is full).
  defp checkout_or_queue(pid, from, state) do
    # When others wait already, queue behind them (first come, first served).
    taken =
      if waiting_count(state) == 0,
        do: claim(state.table, state.counters, pooled_ids(state), pid),
        else: :none

    cond do
      taken != :none ->
        {id, instance_ref, store_ref} = taken
        {:reply, {:ok, id, instance_ref, store_ref}, state}

      map_size(state.instances) < state.size + state.max_overflow ->
        overflow? = map_size(state.instances) >= state.size

        case create(state, pid, overflow?) do
          {:ok, id, state} ->
            if overflow?,
              do: pool_event(state, :overflow, %{instances: map_size(state.instances)})

            reply_instance(state, from, id)
            {:noreply, state}

          {:error, _} = error ->
            {:reply, error, state}
        end

      true ->
        {:reply, :queue, state}
    end
  end

  defp pool_event(state, event, measurements) do
    metadata = %{pool: state.name || self(), pool_pid: self()}
    Wasmbeam.Telemetry.execute([:wasmbeam, :pool, event], measurements, metadata)
  end

  @impl true
  def handle_info({:"$watch", pid}, state) when is_pid(pid) do
    {:noreply, %{state | watched: Map.put(state.watched, Process.monitor(pid), pid)}}
  end

  def handle_info({:"$in", id, pid, outcome}, state),
    do: {:noreply, returned(state, id, pid, outcome)}

  def handle_info({:DOWN, monitor, :process, _pid, _reason}, state) do
    case Map.pop(state.watched, monitor) do
      {nil, _} ->
        {:noreply, state}

      {pid, watched} ->
        state = %{state | watched: watched}
        # Rows of the queue it may have left behind, in one sweep for all
        # the deaths of the next 10 ms (`@sweep_after`): a sweep walks the
        # whole queue, and callers die all the time (every request
        # process that used the pool), so at most 100 sweeps a second,
        # however many die.
        state =
          if state.sweeping or :ets.info(state.waiters, :size) == 0 do
            state
          else
            Process.send_after(self(), :"$sweep", @sweep_after)
            %{state | sweeping: true}
          end

        {:noreply, holder_died(state, pid)}
    end
  end

  # Waiters that died, and instances given by processes that died before
  # they woke the waiter.
  def handle_info(:"$sweep", state) do
    state =
      state.waiters
      |> :ets.tab2list()
      |> Enum.reduce(%{state | sweeping: false}, fn
        {ticket, pid, tag}, state when is_integer(ticket) ->
          if Process.alive?(pid), do: state, else: dead_waiter(state, ticket, pid, tag)

        {{:g, ticket}, pid, tag, grant}, state ->
          cond do
            not Process.alive?(pid) ->
              dead_waiter(state, ticket, pid, tag)

            is_tuple(grant) and not Process.alive?(elem(grant, 1)) ->
              give_on(state, ticket, elem(grant, 0), elem(grant, 1), pid, tag)
              state

            true ->
              state
          end
      end)

    {:noreply, state}
  end

  def handle_info(_message, state), do: {:noreply, state}

  # A dead waiter's ticket: one still waiting leaves the queue (the pool
  # withdraws it); one given an instance (the giver committed before the
  # death) brings its instance back, unused.
  defp dead_waiter(state, ticket, pid, tag) do
    # Rows read a moment ago may be gone: the waiter finished before it
    # died. A dead waiter changes nothing any more, so what is there now
    # is what it left.
    if :ets.member(state.waiters, ticket) or :ets.member(state.waiters, {:g, ticket}),
      do: settle_dead_waiter(state, ticket, pid, tag),
      else: state
  end

  defp settle_dead_waiter(state, ticket, pid, tag) do
    _ = :ets.insert_new(state.waiters, {{:g, ticket}, pid, tag, :withdrawn})
    dequeue(state.waiters, state.counters, ticket)

    case :ets.take(state.waiters, {:g, ticket}) do
      [{_, ^pid, _, {id, giver, _, _}}] ->
        move_claim(state.table, id, giver, pid)
        returned(state, id, pid, :ok)

      _withdrawn ->
        state
    end
  end

  # A watched process died: the instances it holds come back, except
  # those it had given to a waiter (the grant row says so) that has not
  # taken the claim yet: those go on to the waiter, which is woken in case
  # the giver died before it could. (A waiter takes the claim before it
  # deletes its grant row: a claim whose grant row is gone has moved
  # already, and `returned/4`, which takes the claim over only from the
  # dead process, leaves it.) Instances given to it that it never took
  # come back unused.
  defp holder_died(state, pid) do
    case :ets.select(state.table, [{{{:held, :"$1"}, pid}, [], [:"$1"]}]) do
      [] ->
        state

      held ->
        given =
          :ets.select(state.waiters, [
            {{{:g, :"$4"}, :"$1", :"$2", {:"$3", pid, :_, :_}}, [],
             [{{:"$4", :"$1", :"$2", :"$3"}}]}
          ])

        handed =
          for {ticket, waiter, tag, id} <- given, id in held do
            give_on(state, ticket, id, pid, waiter, tag)
            id
          end

        unused =
          :ets.select(state.waiters, [
            {{{:g, :"$1"}, pid, :"$2", {:"$3", :_, :_, :_}}, [], [{{:"$1", :"$2", :"$3"}}]}
          ])

        state =
          Enum.reduce(unused, state, fn {t, tag, _}, state -> dead_waiter(state, t, pid, tag) end)

        unused = for {_, _, id} <- unused, do: id

        # A holder that died may have been anywhere in a call: keep its
        # instance only where interrupted guests are acceptable.
        Enum.reduce((held -- handed) -- unused, state, &returned(&2, &1, pid, :interrupted))
    end
  end

  # An instance came back through the pool from `holder` (a checkin, or
  # the holder died): the pool takes the claim over from `holder` (only
  # from it: a claim that moved on is not the pool's business), then keeps
  # the instance or replaces it.
  defp returned(state, id, holder, outcome) do
    if move_claim(state.table, id, holder, self()) == 1,
      do: kept_or_replaced(state, id, outcome),
      else: state
  end

  # Finishes a hand-over whose giver died: the claim moves to the waiter,
  # which is woken (a second wake-up, if the giver sent one, is dropped).
  defp give_on(state, ticket, id, giver, waiter, tag) do
    dequeue(state.waiters, state.counters, ticket)
    move_claim(state.table, id, giver, waiter)
    instance = state.instances[id]
    send(tag, {tag, :"$given", id, waiter, instance.ref, instance.store.ref})
  end

  # A claim can outlive its instance for a moment: a claimer that read the
  # ids before a discard and died before it let go. Only the claim is left
  # to remove.
  defp kept_or_replaced(state, id, _outcome) when not is_map_key(state.instances, id) do
    :ets.delete(state.table, {:held, id})
    serve_waiting(state)
  end

  defp kept_or_replaced(state, id, outcome) do
    keep? =
      case {state.policy, outcome} do
        {_, :broken} ->
          false

        {:fresh, _} ->
          false

        {:reset_after_trap, :interrupted} ->
          false

        # An interrupted call may have lost the store (a guest parked in
        # host I/O cannot be stopped at its deadline); a component that
        # trapped may not be entered again (the component model), so it
        # is replaced under any policy.
        {_, :interrupted} ->
          instance = state.instances[id]

          not is_struct(instance, Wasmbeam.Component.Instance) and
            Native.store_usable(instance.store.ref)

        _ ->
          true
      end

    cond do
      # A kept instance goes straight to the oldest waiting caller; a
      # pooled one nobody waits for goes back to the free ones.
      keep? and id > 0 ->
        release(pool_env(state), item(state, id), self())
        state

      keep? and waiting_count(state) > 0 and
          give(pool_env(state), item(state, id), self()) == :given ->
        state

      # A discarded instance, or an overflow one nobody waits for.
      true ->
        # Row first, claim second: a caller that claims in between finds
        # no row and lets go.
        :ets.delete(state.table, id)
        :ets.delete(state.table, {:held, id})

        state = %{
          state
          | instances: Map.delete(state.instances, id),
            discarded: state.discarded + 1
        }

        :atomics.put(state.counters, @instances, map_size(state.instances))
        state |> publish_ids() |> replenish() |> serve_waiting()
    end
  end

  defp item(state, id) do
    instance = state.instances[id]
    {id, instance.ref, instance.store.ref}
  end

  defp pool_env(state),
    do: %{table: state.table, waiters: state.waiters, counters: state.counters}

  defp lease_instance(%Wasmbeam.Component{} = component, ref, store),
    do: %Wasmbeam.Component.Instance{ref: ref, store: store, component: component}

  defp lease_instance(module, ref, store), do: %Instance{ref: ref, store: store, module: module}

  # Brings the pool back to its size after a discard.
  defp replenish(state) do
    if map_size(state.instances) < state.size do
      case create(state, nil, false) do
        {:ok, _id, state} -> state
        # Instantiation failed: run short; a later checkout grows the pool.
        {:error, _} -> state
      end
    else
      state
    end
  end

  # Gives free instances to waiting callers, oldest first, while both
  # last (after an instance was made or freed by the pool).
  defp serve_waiting(state) do
    env = pool_env(state)

    with true <- waiting_count(state) > 0,
         {_, _, _} = item <- claim(state.table, state.counters, pooled_ids(state), self()),
         :given <- release(env, item, self()) do
      serve_waiting(state)
    else
      _ -> state
    end
  end
end
