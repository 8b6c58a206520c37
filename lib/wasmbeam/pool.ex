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
      round trip) and tells the pool, asynchronously, who holds it;
    * checkin is one asynchronous message; the pool puts the instance back,
      hands it to a waiting caller, or replaces it, depending on its policy;
    * only when no instance is idle does the caller ask the pool process,
      which creates an overflow instance, queues the caller, or refuses.

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
  # `{:meta, pool_pid, policy, waiting, ids}` (`ids`: the pooled instances).
  # Taking an instance is inserting its claim with `:ets.insert_new/2`
  # (atomic: one claimer wins); giving it back is deleting the claim. Rows
  # hold only references, and the module (the same for every instance) is
  # in `:persistent_term`: copying a whole `%Instance{}` out of ETS costs
  # more than the call itself. The pool process watches every caller once
  # (it is told before the caller's first claim), so when a holder dies the
  # pool finds its claims and takes the instances back.

  defp handle(pool) when is_atom(pool) do
    case :ets.lookup(pool, :meta) do
      [{:meta, pid, policy, waiting, ids}] ->
        case :persistent_term.get({__MODULE__, pid}, nil) do
          nil ->
            not_running(pool)

          module ->
            {:ok,
             %{table: pool, pid: pid, policy: policy, waiting: waiting, ids: ids, module: module}}
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

  # Every running pool has its module under `{Wasmbeam.Pool, pid}`: a
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
    taken = if handle.waiting == 0, do: claim(handle.table, handle.ids, self()), else: :none

    result =
      case taken do
        {id, instance_ref, store_ref} -> {:ok, id, instance_ref, store_ref}
        :none -> wait_span(pool, handle, timeout)
      end

    case result do
      {:ok, id, instance_ref, store_ref} ->
        store = %Wasmbeam.Store{ref: store_ref, engine: handle.module.engine}

        {:ok, %{id: id, instance: lease_instance(handle.module, instance_ref, store)}}

      {:error, _} = error ->
        error
    end
  rescue
    # The table went away with its pool.
    ArgumentError -> not_running(handle.pid)
  end

  # The pool must monitor a caller before the caller's first claim, so
  # that no instance can be held by a process the pool does not watch.
  defp watched_by(pool_pid) do
    key = {__MODULE__, pool_pid}

    unless Process.get(key) do
      send(pool_pid, {:"$watch", self()})
      Process.put(key, true)
    end
  end

  # Claims the first free instance, starting at a place that depends on
  # the scheduler so that concurrent callers rarely race for the same one.
  defp claim(table, ids, pid) do
    count = tuple_size(ids)

    if count == 0,
      do: :none,
      else: claim(table, ids, pid, rem(:erlang.system_info(:scheduler_id), count), count)
  end

  defp claim(_table, _ids, _pid, _index, 0), do: :none

  defp claim(table, ids, pid, index, left) do
    id = elem(ids, index)
    next = if index + 1 == tuple_size(ids), do: 0, else: index + 1

    if :ets.insert_new(table, {{:held, id}, pid}) do
      case :ets.lookup(table, id) do
        [{^id, instance_ref, store_ref}] ->
          {id, instance_ref, store_ref}

        # Discarded since `ids` was read.
        [] ->
          :ets.delete_object(table, {{:held, id}, pid})
          claim(table, ids, pid, next, left - 1)
      end
    else
      claim(table, ids, pid, next, left - 1)
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

  defp wait_for_instance(handle, timeout) do
    # The pool itself enforces the timeout, so a caller never gives up on an
    # instance the pool is about to hand it.
    GenServer.call(handle.pid, {:"$checkout", timeout}, :infinity)
  catch
    :exit, _ -> not_running(handle.pid)
  end

  # The common case, a clean return of a pooled (not overflow) instance
  # under `:reuse`/`:reset_after_trap` with nobody waiting, is deleting the
  # claim and reading the waiting count, with no message. When
  # callers wait, the instance goes back through the pool process, which
  # hands it to the oldest waiter. The order matters: the pool counts a
  # waiter before it looks for free instances, and the caller frees its
  # instance before it looks again, so one of the two always sees the
  # other. Every other return goes through the pool process too, which
  # keeps or replaces the instance.
  defp checkin(handle, lease, result) do
    outcome = outcome(result)

    # `handle.waiting` was read at checkout: if it is stale, the read after
    # the free below, or the pool, puts things right.
    if outcome == :ok and handle.policy != :fresh and lease.id > 0 and handle.waiting == 0 do
      :ets.delete_object(handle.table, {{:held, lease.id}, self()})

      if :ets.lookup_element(handle.table, :meta, 4) > 0,
        do: send(handle.pid, :"$freed")
    else
      send(handle.pid, {:"$in", lease.id, self(), outcome})
    end

    :ok
  rescue
    # The pool is gone, and its table with it.
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
    # Under saturation every caller waits on this process; at normal
    # priority it would get one turn in as many as there are callers.
    Process.flag(:priority, :high)
    table = new_table(config.name)
    :ets.insert(table, {:meta, self(), config.policy, 0, {}})
    :persistent_term.put({__MODULE__, self()}, config.module)

    state =
      Map.merge(config, %{
        linked: link(config),
        table: table,
        # every live instance: id -> instance (overflow ones have ids < 0)
        instances: %{},
        # callers the pool monitors: monitor -> pid
        watched: %{},
        # callers waiting for an instance, oldest first: {from, timer}
        waiting: :queue.new(),
        # its length (`:queue.len/1` walks the queue)
        waiting_count: 0,
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
  def terminate(_reason, _state) do
    :persistent_term.erase({__MODULE__, self()})
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

  @impl true
  def handle_call(:"$handle", _from, state) do
    {:reply,
     %{
       table: state.table,
       pid: self(),
       policy: state.policy,
       waiting: state.waiting_count,
       ids: pooled_ids(state),
       module: state.module
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
       waiting: state.waiting_count,
       created: state.created,
       discarded: state.discarded
     }, state}
  end

  def handle_call({:"$checkout", timeout}, {pid, _} = from, state) do
    case checkout_timeout(checkout_timeout: timeout) do
      {:ok, timeout} -> checkout_or_wait(timeout || state.checkout_timeout, pid, from, state)
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

  defp checkout_or_wait(timeout, pid, from, state) do
    # When others wait already, queue behind them (first come, first served).
    taken =
      if state.waiting_count == 0, do: claim(state.table, pooled_ids(state), pid), else: :none

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

      state.waiting_count < state.max_waiting ->
        first? = state.waiting_count == 0

        timer =
          if timeout != :infinity, do: Process.send_after(self(), {:"$expire", from}, timeout)

        state =
          set_waiting(state, :queue.in({from, timer}, state.waiting), state.waiting_count + 1)

        # The first waiter: an instance may have been freed between the look
        # above and the count (later waiters are served by checkins, which
        # see the count).
        {:noreply, if(first?, do: serve_waiting(state), else: state)}

      true ->
        pool_event(state, :overloaded, %{
          instances: map_size(state.instances),
          waiting: state.waiting_count
        })

        error =
          Error.new(
            :overloaded,
            "all #{map_size(state.instances)} instances are in use and " <>
              "#{state.waiting_count} callers wait (max_waiting: #{state.max_waiting})"
          )

        {:reply, {:error, error}, state}
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

  def handle_info(:"$freed", state), do: {:noreply, serve_waiting(state)}

  def handle_info({:"$in", id, pid, outcome}, state) do
    if :ets.lookup(state.table, {:held, id}) == [{{:held, id}, pid}],
      do: {:noreply, returned(state, id, outcome)},
      else: {:noreply, state}
  end

  def handle_info({:DOWN, monitor, :process, _pid, _reason}, state) do
    case Map.pop(state.watched, monitor) do
      {nil, _} ->
        {:noreply, state}

      {pid, watched} ->
        held = :ets.select(state.table, [{{{:held, :"$1"}, pid}, [], [:"$1"]}])
        # A holder that died may have been anywhere in a call: keep its
        # instance only where interrupted guests are acceptable.
        state = Enum.reduce(held, %{state | watched: watched}, &returned(&2, &1, :interrupted))
        {:noreply, state}
    end
  end

  def handle_info({:"$expire", from}, state) do
    {expired, waiting} =
      state.waiting |> :queue.to_list() |> Enum.split_with(&match?({^from, _}, &1))

    if expired != [] do
      GenServer.reply(
        from,
        {:error, Error.new(:timeout, "no instance of the pool became free in time")}
      )
    end

    {:noreply,
     set_waiting(state, :queue.from_list(waiting), state.waiting_count - length(expired))}
  end

  def handle_info(_message, state), do: {:noreply, state}

  # Callers only ask whether anyone waits: write the table when that changes.
  defp set_waiting(state, waiting, count) do
    if count == 0 != (state.waiting_count == 0),
      do: :ets.update_element(state.table, :meta, {4, count})

    %{state | waiting: waiting, waiting_count: count}
  end

  # An instance came back through the pool (or its holder died): keep it
  # or replace it. Its claim is still in the table until here.
  #
  # A claim can outlive its instance for a moment: a claimer that read the
  # ids before a discard and died before it let go. Only the claim is left
  # to remove.
  defp returned(state, id, _outcome) when not is_map_key(state.instances, id) do
    :ets.delete(state.table, {:held, id})
    serve_waiting(state)
  end

  defp returned(state, id, outcome) do
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
      # A kept instance goes straight to the oldest waiting caller.
      keep? and state.waiting_count > 0 and hand_over(state, id) ->
        set_waiting(state, elem(:queue.out(state.waiting), 1), state.waiting_count - 1)

      keep? and id > 0 ->
        :ets.delete(state.table, {:held, id})
        serve_waiting(state)

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

        state |> publish_ids() |> replenish() |> serve_waiting()
    end
  end

  defp lease_instance(%Wasmbeam.Component{} = component, ref, store),
    do: %Wasmbeam.Component.Instance{ref: ref, store: store, component: component}

  defp lease_instance(module, ref, store), do: %Instance{ref: ref, store: store, module: module}

  # Gives instance `id` (claimed by its returning holder) to the first
  # waiting caller, if that one is alive.
  defp hand_over(state, id) do
    {{:value, {{pid, _} = from, timer}}, _} = :queue.out(state.waiting)

    if Process.alive?(pid) do
      cancel_timer(timer)
      :ets.insert(state.table, {{:held, id}, pid})
      reply_instance(state, from, id)
      true
    else
      false
    end
  end

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

  # Hands free instances to waiting callers, oldest first; callers that
  # died while waiting are skipped.
  defp serve_waiting(state) do
    case :queue.out(state.waiting) do
      {{:value, {{pid, _} = from, timer}}, rest} ->
        cond do
          not Process.alive?(pid) ->
            cancel_timer(timer)
            serve_waiting(set_waiting(state, rest, state.waiting_count - 1))

          (taken = claim(state.table, pooled_ids(state), pid)) != :none ->
            {id, instance_ref, store_ref} = taken
            cancel_timer(timer)
            GenServer.reply(from, {:ok, id, instance_ref, store_ref})
            serve_waiting(set_waiting(state, rest, state.waiting_count - 1))

          true ->
            state
        end

      {:empty, _} ->
        state
    end
  end

  defp cancel_timer(nil), do: :ok
  defp cancel_timer(timer), do: Process.cancel_timer(timer, async: true, info: false)
end
