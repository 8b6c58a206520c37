defmodule Wasmbeam.Instance.Server do
  @moduledoc """
  An instance process: a GenServer that owns one store and instance and
  runs calls to it, one at a time, in the order they arrive.

  Start it with `Wasmbeam.Instance.start_link/1` (or put
  `{Wasmbeam.Instance, options}` in a supervisor) and call it with
  `Wasmbeam.Instance.call/4`, as a bare instance. This module adds what only
  a process can do: `async_call/4`, `await/2`, `cancel/1` and `info/1`.

  ## How a call runs

  The process drives its guest itself, one time slice (about 100 µs) at a
  time. After each slice it sends itself a message to resume and goes back
  to its mailbox, so between two slices it answers `info/1`, queues new
  calls, and handles cancellations and the death of callers. A long call
  never makes the process unresponsive.

  Host functions of the instance run **in the instance process** (not in
  the process that called): a handler sees the instance process's
  dictionary and logger metadata. A `{:process, server}` handler is called
  from the instance process. A handler must not call its own instance
  process (it would wait for itself): it gets a `:busy` error and should use
  its `Wasmbeam.Caller` instead.

  ## Queueing, cancellation, caller death

    * Calls that arrive while one runs wait in a bounded queue
      (`:max_queue`, default #{64}); when it is full, a call fails at once with
      an `:overloaded` error rather than growing the mailbox.
    * `:timeout` counts from the moment the process receives the call, so
      it bounds the time spent waiting in the queue as well as running.
    * `cancel/1` stops a running call (the guest traps at once, the store
      stays usable) or removes a queued one; its caller gets a `:cancelled`
      error.
    * The process monitors every caller: when one dies, its running call is
      cancelled and its queued calls are dropped.

  ## Failures and restarts

  A trap, a timeout or exhausted fuel is returned to the caller as an
  error; the instance stays usable and the process keeps running. When the
  store is poisoned (its state unknown after a native failure, kind
  `:poisoned` or `:panic`), or lost by a call that timed out or was
  cancelled while its guest was parked in host I/O (a WASI read that never
  completes), the process answers that call and then exits with
  `{:wasmbeam_poisoned, message}`: its supervisor starts a fresh instance,
  so the next caller is not the one to find out. Queued callers then get a
  `:down` error.
  """

  use GenServer

  require Logger

  alias Wasmbeam.{
    CallOptions,
    Component,
    Driver,
    Error,
    ExportName,
    Instance,
    Module,
    Native,
    StartOptions,
    Telemetry
  }

  @default_max_queue 64
  @span [:wasmbeam, :instance_process]
  # Extra time a caller waits beyond its call's `:timeout` before giving up
  # on the process (a host handler in the process may overrun the deadline).
  @await_grace_ms 1_000
  # How long `await/2` waits for an answer before it checks that the
  # server is an instance process at all.
  @identity_check_ms 50

  @typedoc "An instance process: a pid or any GenServer name."
  @type server :: GenServer.server()

  @typedoc "A call started with `async_call/4`, to `await/2` or `cancel/1`."
  @opaque request :: %{server: pid(), tag: reference(), timeout: timeout()}

  @type option ::
          {:module, Module.t() | binary()}
          | {:imports, Wasmbeam.Imports.t()}
          | {:instance_options, keyword()}
          | {:max_queue, non_neg_integer()}
          | {:name, GenServer.name()}

  @doc false
  @spec start_link([option]) :: GenServer.on_start() | {:error, Error.t()}
  def start_link(options) when is_list(options) do
    with {:ok, name_options, init} <- parse_options(options) do
      GenServer.start_link(__MODULE__, init, name_options)
    end
  end

  def start_link(other),
    do: {:error, Error.new(:argument, "options must be a keyword list, got: #{inspect(other)}")}

  defp parse_options(options) do
    known = [:module, :imports, :instance_options, :max_queue, :name, :id, :restart]

    with :ok <- check_keys(options, known),
         {:ok, module} <- StartOptions.module(Keyword.get(options, :module)),
         {:ok, max_queue} <-
           max_queue_option(Keyword.get(options, :max_queue, @default_max_queue)),
         {:ok, instance_options} <- StartOptions.list(options, :instance_options) do
      name_options = if options[:name], do: [name: options[:name]], else: []

      {:ok, name_options,
       %{
         module: module,
         imports: Keyword.get(options, :imports, %{}),
         instance_options: instance_options,
         max_queue: max_queue,
         name: options[:name]
       }}
    end
  end

  defp check_keys(options, known) do
    case Enum.reject(options, &match?({key, _} when is_atom(key), &1)) do
      [] ->
        case Enum.uniq(Keyword.keys(options)) -- known do
          [] -> :ok
          unknown -> {:error, Error.new(:argument, "unknown options: #{inspect(unknown)}")}
        end

      bad ->
        {:error, Error.new(:argument, "options must be a keyword list, got: #{inspect(bad)}")}
    end
  end

  defp max_queue_option(n) when is_integer(n) and n >= 0, do: {:ok, n}

  defp max_queue_option(other),
    do:
      {:error,
       Error.new(:argument, ":max_queue must be a non-negative integer, got: #{inspect(other)}")}

  @doc """
  Starts a call and returns at once with a request to `await/2` (or
  `cancel/1`). Only the process that started the call can await it. Takes
  the same options as `Wasmbeam.Instance.call/4`.

  ## Examples

      iex> module = Wasmbeam.Module.compile!(~S[(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))])
      iex> {:ok, server} = Wasmbeam.Instance.start_link(module: module)
      iex> {:ok, request} = Wasmbeam.Instance.Server.async_call(server, "add", [1, 2])
      iex> Wasmbeam.Instance.Server.await(request)
      {:ok, [3]}
  """
  @spec async_call(server(), Wasmbeam.Component.Instance.export_name(), [term()], CallOptions.t()) ::
          {:ok, request()} | {:error, Error.t()}
  def async_call(server, name, args, options \\ [])

  def async_call(server, name, args, options)
      when (is_binary(name) or is_tuple(name)) and is_list(args) do
    with :ok <- ExportName.check_any(name),
         {:ok, native} <- CallOptions.to_native(options),
         {:ok, pid} <- whereis(server),
         :ok <- not_self(pid) do
      # An alias monitor: a reply that arrives after the caller gave up is
      # dropped by the runtime instead of lingering in its mailbox.
      tag = :erlang.monitor(:process, pid, alias: :demonitor)
      send(pid, {:"$wasmbeam_call", self(), tag, name, args, native})
      {:ok, %{server: pid, tag: tag, timeout: await_timeout(native.timeout)}}
    end
  end

  def async_call(_server, name, args, _options),
    do:
      {:error,
       Error.new(
         :argument,
         "expected an export name (string) and a list of arguments, got: #{inspect(name)}, #{inspect(args)}"
       )}

  defp await_timeout(nil), do: :infinity
  defp await_timeout(ms), do: min(ms + @await_grace_ms, Wasmbeam.Timeout.max_ms())

  @doc false
  # The pid of `server`, or a `:down` error (an `:argument` error for a
  # malformed name).
  @spec whereis(server()) :: {:ok, pid()} | {:error, Error.t()}
  def whereis(server) do
    case GenServer.whereis(server) do
      pid when is_pid(pid) ->
        {:ok, pid}

      _ ->
        {:error, Error.new(:down, "no instance process is running as #{inspect(server)}")}
    end
  catch
    # GenServer.whereis/1 raises on a malformed name.
    _, _ -> {:error, Error.new(:argument, "not an instance process: #{inspect(server)}")}
  end

  defp not_self(pid) when pid == self(),
    do:
      {:error,
       Error.new(
         :busy,
         "an instance process cannot call itself (a host function should use its Wasmbeam.Caller)"
       )}

  defp not_self(_pid), do: :ok

  @doc """
  Waits for the result of `async_call/4`. By default it waits as long as
  the call's `:timeout` allows (plus a second's grace), or for ever when
  the call has none; if `timeout` passes first, the call is cancelled and a
  `:timeout` error returned. If the instance process exits first, the
  result is a `:down` error.

  ## Examples

      iex> module = Wasmbeam.Module.compile!(~S[(module (func (export "spin") (loop br 0)))])
      iex> {:ok, server} = Wasmbeam.Instance.start_link(module: module)
      iex> {:ok, request} = Wasmbeam.Instance.Server.async_call(server, "spin", [])
      iex> {:error, %Wasmbeam.Error{kind: :timeout}} = Wasmbeam.Instance.Server.await(request, 20)
  """
  @spec await(request(), timeout() | nil) :: {:ok, [Wasmbeam.Types.value()]} | {:error, Error.t()}
  def await(%{tag: _} = request, timeout \\ nil) do
    with {:ok, timeout} <-
           Wasmbeam.Timeout.check(timeout || request.timeout, "await/2's timeout"),
         do: receive_answer(request, timeout, answer_deadline(timeout), :unchecked)
  end

  @doc "Like `await/2`, but returns the results or raises `Wasmbeam.Error`."
  @spec await!(request(), timeout() | nil) :: [Wasmbeam.Types.value()]
  def await!(request, timeout \\ nil), do: await(request, timeout) |> Error.unwrap!()

  # A process that is not an instance process never answers a request.
  # Checking who the server is costs more than a call (the check copies
  # its process dictionary), so it is done only for a request that has
  # not been answered after @identity_check_ms: a call given the wrong
  # process fails then with an `:argument` error instead of waiting for
  # ever, and a quick call never pays for the check.
  defp receive_answer(%{tag: tag} = request, timeout, deadline, checked) do
    wait =
      if checked == :unchecked,
        do: min(time_left(deadline), @identity_check_ms),
        else: time_left(deadline)

    receive do
      {^tag, result} ->
        Process.demonitor(tag, [:flush])
        result

      {:DOWN, ^tag, :process, _pid, reason} ->
        down(reason)
    after
      wait ->
        cond do
          checked == :unchecked ->
            case check_instance_process(request.server) do
              :ok -> receive_answer(request, timeout, deadline, :checked)
              {:error, _} = error -> give_up(request, error)
            end

          time_left(deadline) > 0 ->
            receive_answer(request, timeout, deadline, checked)

          true ->
            cancel(request)
            Process.demonitor(tag, [:flush])

            {:error,
             Error.new(:timeout, "the instance process did not answer within #{timeout} ms")}
        end
    end
  end

  # The answer (or the death) that raced with the check wins over its verdict.
  defp give_up(%{tag: tag}, error) do
    receive do
      {^tag, result} ->
        Process.demonitor(tag, [:flush])
        result

      {:DOWN, ^tag, :process, _pid, reason} ->
        down(reason)
    after
      0 ->
        Process.demonitor(tag, [:flush])
        error
    end
  end

  defp down(reason),
    do: {:error, Error.new(:down, "the instance process exited: #{inspect(reason)}")}

  defp answer_deadline(:infinity), do: :infinity
  defp answer_deadline(ms), do: System.monotonic_time(:millisecond) + ms

  defp time_left(:infinity), do: :infinity
  defp time_left(deadline), do: max(deadline - System.monotonic_time(:millisecond), 0)

  @doc false
  # `:ok` when `pid` is an instance process; an `:argument` error when it
  # is another process, a `:down` error when it is not alive. A process on
  # another node is taken at its word. Costs a copy of the process's
  # dictionary: not for every call.
  @spec check_instance_process(pid()) :: :ok | {:error, Error.t()}
  def check_instance_process(pid) when node(pid) != node(), do: :ok

  def check_instance_process(pid) do
    case :proc_lib.initial_call(pid) do
      {__MODULE__, :init, _} ->
        :ok

      _other ->
        if Process.alive?(pid),
          do: {:error, Error.new(:argument, "not an instance process: #{inspect(pid)}")},
          else: {:error, Error.new(:down, "no instance process is running as #{inspect(pid)}")}
    end
  end

  @doc """
  Cancels a call started with `async_call/4`, whether it runs or waits in
  the queue; whoever awaits it gets a `:cancelled` error. Cancelling a call
  that has finished does nothing. Any process holding the request may
  cancel it.

  ## Examples

      iex> module = Wasmbeam.Module.compile!(~S[(module (func (export "spin") (loop br 0)))])
      iex> {:ok, server} = Wasmbeam.Instance.start_link(module: module)
      iex> {:ok, request} = Wasmbeam.Instance.Server.async_call(server, "spin", [])
      iex> Wasmbeam.Instance.Server.cancel(request)
      :ok
      iex> {:error, %Wasmbeam.Error{kind: :cancelled}} = Wasmbeam.Instance.Server.await(request)
  """
  @spec cancel(request()) :: :ok
  def cancel(%{server: pid, tag: tag}) do
    send(pid, {:"$wasmbeam_cancel", tag})
    :ok
  end

  @doc """
  What the process is doing: whether a call is running, how many wait,
  and how many calls it has finished since it started.

  ## Examples

      iex> module = Wasmbeam.Module.compile!(~S[(module (func (export "nop")))])
      iex> {:ok, server} = Wasmbeam.Instance.start_link(module: module)
      iex> Wasmbeam.Instance.call(server, "nop", [])
      {:ok, []}
      iex> Wasmbeam.Instance.Server.info(server)
      {:ok, %{running: false, queued: 0, max_queue: 64, completed: 1}}
  """
  @spec info(server()) :: {:ok, map()} | {:error, Error.t()}
  def info(server) do
    with {:ok, pid} <- whereis(server),
         :ok <- check_instance_process(pid) do
      try do
        case GenServer.call(pid, :"$wasmbeam_info") do
          %{running: _, queued: _} = info ->
            {:ok, info}

          # Another of Wasmbeam's processes (a pool, say) answers so.
          {:error, %Error{}} ->
            {:error, Error.new(:argument, "not an instance process: #{inspect(server)}")}

          other ->
            {:error,
             Error.new(
               :argument,
               "not an instance process: #{inspect(server)} answered #{inspect(other)}"
             )}
        end
      catch
        :exit, reason ->
          {:error, Error.new(:down, "the instance process exited: #{inspect(reason)}")}
      end
    end
  end

  @doc false
  # Used by `Wasmbeam.Instance.call/4`.
  @spec call(server(), Wasmbeam.Component.Instance.export_name(), [term()], CallOptions.t()) ::
          {:ok, [Wasmbeam.Types.value()]} | {:error, Error.t()}
  def call(server, name, args, options) do
    with {:ok, request} <- async_call(server, name, args, options), do: await(request)
  end

  ## GenServer

  @impl true
  def init(%{module: module, imports: imports, instance_options: options} = init) do
    # Trap exits so `terminate/2` runs on a supervisor's shutdown and can
    # answer the callers that are still waiting.
    Process.flag(:trap_exit, true)
    metadata = %{pid: self(), name: init[:name], module: module}
    span = Telemetry.start_span(@span, metadata)

    case Instance.new(module, imports, options) do
      {:ok, instance} ->
        {:ok,
         %{
           instance: instance,
           span: span,
           store_ref: instance.store.ref,
           # what a component instance is made again from after a trap
           renew: %{component: module, imports: imports, options: options},
           max_queue: init.max_queue,
           running: nil,
           queue: :queue.new(),
           queued: 0,
           completed: 0,
           # slices the running call has used (counted up to 2), and
           # whether this process lowered its priority for it
           slices: 0,
           lowered: false,
           # every caller that is alive: pid -> monitor
           callers: %{}
         }}

      {:error, error} ->
        Telemetry.exception_span(@span, span, :error, error, [], %{})
        # start_link/1 returns `{:error, error}`; unlinking first keeps the
        # exit signal that follows from killing a caller that does not
        # trap exits (bad input must be an error, not a crash).
        Wasmbeam.Starter.unlink()
        {:stop, error}
    end
  end

  @impl true
  def handle_call(:"$wasmbeam_info", _from, state) do
    {:reply,
     %{
       running: state.running != nil,
       queued: state.queued,
       max_queue: state.max_queue,
       completed: state.completed
     }, state}
  end

  # A call meant for another kind of process (a pool's, say) is answered,
  # not a crash.
  def handle_call(other, _from, state) do
    {:reply,
     {:error, Error.new(:argument, "not a request for an instance process: #{inspect(other)}")},
     state}
  end

  # Nobody casts to an instance process.
  @impl true
  def handle_cast(request, state) do
    Logger.debug("Wasmbeam.Instance.Server ignored the cast #{inspect(request)}")
    {:noreply, state}
  end

  @impl true
  def handle_info({:"$wasmbeam_call", pid, tag, name, args, native}, state)
      when is_pid(pid) and is_reference(tag) do
    # Any process can send a request: one that `async_call/4` would not
    # have sent is answered with an error, never run.
    case check_request(name, args, native) do
      :ok -> accept(pid, tag, name, args, native, state)
      {:error, _} = error -> {:noreply, reply(%{tag: tag}, error, state)}
    end
  end

  def handle_info({:"$wasmbeam_step", tag}, %{running: %{tag: tag}} = state) do
    state.store_ref |> Native.store_resume() |> Driver.settle(state.store_ref) |> stepped(state)
  end

  # The guest waited for I/O (a WASI read, a sleep) and can go on.
  def handle_info({:wasmbeam_wake, _store_id}, %{running: %{parked: true}} = state) do
    state = put_in(state.running.parked, false)
    state.store_ref |> Native.store_resume() |> Driver.settle(state.store_ref) |> stepped(state)
  end

  def handle_info({:"$wasmbeam_io_deadline", tag}, %{running: %{tag: tag, parked: true}} = state) do
    state = put_in(state.running.parked, false)
    state.store_ref |> Native.store_io_timeout() |> stepped(state)
  end

  def handle_info({:"$wasmbeam_expire", tag}, state) do
    error = Error.new(:timeout, "the call's timeout passed while it waited in the queue")
    {:noreply, drop_queued(state, &(&1.tag == tag), error)}
  end

  def handle_info({:"$wasmbeam_cancel", tag}, state) do
    cancel_where(state, &(&1.tag == tag), "cancel/1")
  end

  def handle_info({:DOWN, _monitor, :process, pid, _reason}, state) do
    state = %{state | callers: Map.delete(state.callers, pid)}
    cancel_where(state, &(&1.pid == pid), "its caller exited")
  end

  # Stale resume messages of cancelled calls, wake-ups and other strays.
  def handle_info(_message, state), do: {:noreply, state}

  @impl true
  def terminate(reason, state) do
    case reason do
      stopped when stopped in [:normal, :shutdown] ->
        Telemetry.stop_span(@span, state.span, %{})

      {:shutdown, _} ->
        Telemetry.stop_span(@span, state.span, %{})

      # A callback raised.
      {%{__exception__: true} = exception, stacktrace} ->
        Telemetry.exception_span(@span, state.span, :error, exception, stacktrace, %{})

      _ ->
        Telemetry.exception_span(@span, state.span, :exit, reason, [], %{})
    end

    error = Error.new(:cancelled, "the instance process stopped")

    if state.running do
      Native.store_cancel(state.store_ref)
      send(state.running.tag, {state.running.tag, {:error, error}})
    end

    for call <- :queue.to_list(state.queue), do: send(call.tag, {call.tag, {:error, error}})
    :ok
  end

  ## Running calls

  # Runs a request at once, queues it, or refuses it when the queue is full.
  defp accept(pid, tag, name, args, native, state) do
    deadline = native.timeout && System.monotonic_time(:millisecond) + native.timeout

    call = %{
      pid: pid,
      tag: tag,
      name: name,
      args: args,
      native: native,
      deadline: deadline,
      parked: false
    }

    state = watch(state, pid)

    cond do
      state.running == nil ->
        start(call, state)

      state.queued < state.max_queue ->
        # A queued call is answered at its deadline, even if the running one
        # goes on.
        if deadline, do: Process.send_after(self(), {:"$wasmbeam_expire", tag}, native.timeout)
        {:noreply, %{state | queue: :queue.in(call, state.queue), queued: state.queued + 1}}

      true ->
        error =
          Error.new(
            :overloaded,
            "the instance process has #{state.queued} call(s) queued (max_queue: #{state.max_queue})"
          )

        {:noreply, reply(call, {:error, error}, state)}
    end
  end

  defp check_request(name, args, native) do
    cond do
      not is_list(args) ->
        {:error, Error.new(:argument, "arguments must be a list, got: #{inspect(args)}")}

      not CallOptions.native?(native) ->
        {:error, Error.new(:argument, "malformed call options: #{inspect(native)}")}

      true ->
        ExportName.check_any(name)
    end
  end

  # Starts `call`, or answers it at once when its deadline passed while it
  # was queued. Like every function below, returns a GenServer result.
  defp start(call, state) do
    case remaining(call.deadline) do
      0 ->
        error = Error.new(:timeout, "the call's timeout passed before it could start")
        next(reply(call, {:error, error}, state))

      remaining ->
        # wait: false - nothing but this process calls its store, so a busy
        # store is an error, never a reason to block the process.
        native = %{call.native | timeout: remaining, wait: false}

        state.instance
        |> start_call(call.name, call.args, native)
        |> Driver.settle(state.store_ref)
        |> stepped(%{state | running: call, slices: 0})
    end
  end

  defp module_of(%Component.Instance{component: component}), do: component
  defp module_of(%Instance{module: module}), do: module

  defp start_call(%Wasmbeam.Component.Instance{} = instance, name, args, native) do
    case Wasmbeam.Component.Instance.split_name(name) do
      {:ok, {interface, fname}} ->
        Component.Instance.start_call(
          instance.ref,
          instance.store.ref,
          interface,
          fname,
          args,
          native
        )

      {:error, _} = error ->
        error
    end
  end

  defp start_call(instance, name, args, native),
    do: Native.instance_call(instance.ref, instance.store.ref, name, args, native)

  defp remaining(nil), do: nil
  defp remaining(deadline), do: max(deadline - System.monotonic_time(:millisecond), 0)

  defp stepped(:continue, state) do
    send(self(), {:"$wasmbeam_step", state.running.tag})
    {:noreply, count_slice(state)}
  end

  # Nothing to do until the I/O wakes the guest (or its deadline passes).
  defp stepped({:io_wait, _store_id, ms_left}, state) do
    if ms_left,
      do: Process.send_after(self(), {:"$wasmbeam_io_deadline", state.running.tag}, ms_left)

    {:noreply, put_in(state.running.parked, true)}
  end

  defp stepped({:error, %Error{kind: kind, message: message}} = result, state)
       when kind in [:poisoned, :panic],
       do: stop_poisoned(result, message, state)

  # The component model forbids entering a component instance that
  # trapped (or was stopped): answer the call, then instantiate the
  # component again in a new store, keeping the queue.
  defp stepped({:error, %Error{kind: kind}} = result, %{instance: %Component.Instance{}} = state)
       when kind in [:trap, :timeout, :out_of_fuel, :cancelled] do
    %{component: component, imports: imports, options: options} = state.renew

    case Instance.new(component, imports, options) do
      {:ok, instance} ->
        finished(result, %{state | instance: instance, store_ref: instance.store.ref})

      {:error, error} ->
        stop_poisoned(
          result,
          "the component could not be instantiated again: " <> error.message,
          state
        )
    end
  end

  # A call that was stopped may have lost the store (its guest was parked
  # in host I/O and could not be stopped): answer it, then restart at once
  # rather than fail the next caller.
  defp stepped({:error, %Error{kind: kind, message: message}} = result, state)
       when kind in [:timeout, :cancelled] do
    if Native.store_usable(state.store_ref),
      do: finished(result, state),
      else: stop_poisoned(result, message, state)
  end

  defp stepped(result, state), do: finished(result, state)

  # Like a calling process (see `Wasmbeam.Driver`), this process runs a
  # call that has used two slices at `:low` priority, unless it was started
  # at another priority than `:normal`; `next/1` restores it.
  defp count_slice(%{slices: 1} = state),
    do: %{state | slices: 2, lowered: Driver.lower_priority()}

  defp count_slice(%{slices: 0} = state), do: %{state | slices: 1}
  defp count_slice(state), do: state

  # Answers the call, then exits so that the supervisor starts a fresh
  # instance.
  defp stop_poisoned(result, message, state) do
    state = reply(state.running, result, %{state | running: nil})
    {:stop, {:wasmbeam_poisoned, message}, state}
  end

  defp finished(result, state) do
    next(reply(state.running, result, %{state | running: nil, completed: state.completed + 1}))
  end

  defp next(%{running: nil, lowered: true} = state) do
    Process.flag(:priority, :normal)
    next(%{state | lowered: false})
  end

  defp next(%{running: nil} = state) do
    case :queue.out(state.queue) do
      {{:value, call}, queue} -> start(call, %{state | queue: queue, queued: state.queued - 1})
      {:empty, _} -> {:noreply, state}
    end
  end

  defp reply(call, result, state) do
    send(call.tag, {call.tag, result})
    Telemetry.checked_call(result, call[:name], self(), module_of(state.instance))
    state
  end

  # Each caller is monitored once, from its first call until it dies, so
  # that a process making many calls does not pay for a monitor per call.
  defp watch(state, pid) do
    if Map.has_key?(state.callers, pid),
      do: state,
      else: %{state | callers: Map.put(state.callers, pid, Process.monitor(pid))}
  end

  defp drop_queued(state, match?, error) do
    {dropped, kept} = state.queue |> :queue.to_list() |> Enum.split_with(match?)
    state = %{state | queue: :queue.from_list(kept), queued: length(kept)}
    Enum.reduce(dropped, state, &reply(&1, {:error, error}, &2))
  end

  # Cancels the running call and drops the queued calls that match.
  defp cancel_where(state, match?, why) do
    error = Error.new(:cancelled, "the call was cancelled: #{why}")
    state = drop_queued(state, match?, error)

    if state.running && match?.(state.running) do
      # Polls the guest to its (trapping) end: the store is idle again, or
      # lost (a guest parked in host I/O cannot be stopped). A lost store
      # makes the process exit after answering, so that the next caller
      # finds a fresh instance instead of a `:poisoned` error.
      case Native.store_cancel(state.store_ref) do
        {:error, %Error{kind: :poisoned, message: message}} ->
          stop_poisoned({:error, error}, message, state)

        _stopped_or_idle ->
          next(reply(state.running, {:error, error}, %{state | running: nil}))
      end
    else
      {:noreply, state}
    end
  end
end
