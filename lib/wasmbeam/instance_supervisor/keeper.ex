defmodule Wasmbeam.InstanceSupervisor.Keeper do
  @moduledoc false
  # The supervision of one instance started by
  # `Wasmbeam.InstanceSupervisor.start_instance/2`: a process that starts
  # the instance process, linked, and restarts it when it exits
  # abnormally, at most `max_restarts` times in `max_seconds` (OTP's
  # restart intensity, counted for this instance alone). Past that, it gives
  # the instance up: logs an error, notifies the `:notify` process, and
  # stops normally. It never crashes, so its own supervisor (the
  # `Wasmbeam.InstanceSupervisor`, of which it is a `:temporary` child) never
  # restarts anything, and no rate of guest failures can exhaust that
  # supervisor's intensity, or escalate further up.
  #
  # A keeper stops when its instance stops normally (`:normal`, `:shutdown`,
  # `{:shutdown, _}`), and stops its instance when its supervisor stops it.
  # It registers the instance under `{:via, Registry, {registry, key,
  # keeper}}`, so that `stop_instance/2` finds the keeper from the key.

  use GenServer

  require Logger

  alias Wasmbeam.Error

  @typedoc "How often one instance may be restarted before it is given up."
  @type policy :: %{max_restarts: non_neg_integer(), max_seconds: pos_integer()}

  # As long as the instance process takes to stop (a worker's default),
  # then it is killed.
  @instance_shutdown 5_000

  @doc false
  # How long the keeper's supervisor waits for it to stop: as long as it
  # waits for its instance, and a little more.
  @spec shutdown() :: pos_integer()
  def shutdown, do: @instance_shutdown + 1_000

  @doc false
  # Starts the keeper and its instance; returns `{:ok, keeper, instance}`
  # (so that `DynamicSupervisor.start_child/2` hands back the instance's
  # pid), or the instance's start error.
  @spec start_link(policy(), term(), keyword(), pid() | atom() | nil) ::
          {:ok, pid(), pid()} | {:error, term()}
  def start_link(policy, key, options, notify) do
    :proc_lib.start_link(__MODULE__, :init_keeper, [policy, key, options, notify])
  end

  @doc false
  def init_keeper(policy, key, options, notify) do
    Process.flag(:trap_exit, true)

    state = %{
      policy: policy,
      key: key,
      options: options,
      notify: notify,
      instance: nil,
      # restart times (monotonic ms) within the last `max_seconds`, newest first
      restarts: []
    }

    case start_instance(state) do
      {:ok, pid} ->
        :proc_lib.init_ack({:ok, self(), pid})
        :gen_server.enter_loop(__MODULE__, [], %{state | instance: pid})

      {:error, reason} ->
        # The error is the answer; exiting normally spares the starter an
        # exit signal.
        :proc_lib.init_ack({:error, reason})
        exit(:normal)
    end
  end

  @impl true
  def init(_args), do: {:stop, :use_start_link}

  defp start_instance(state) do
    name = {:via, Registry, {Wasmbeam.InstanceRegistry, state.key, self()}}
    Wasmbeam.Instance.Server.start_link(Keyword.put(state.options, :name, name))
  end

  @impl true
  def handle_info({:EXIT, pid, reason}, %{instance: pid} = state) do
    if stopped_on_purpose?(reason),
      do: {:stop, :normal, %{state | instance: nil}},
      else: restart(%{state | instance: nil}, reason)
  end

  # A restart whose start failed: try again, counted like any restart.
  def handle_info({:"$wasmbeam_retry", reason}, %{instance: nil} = state),
    do: restart(state, reason)

  # Exit signals of processes other than its instance (its parent's are
  # handled by GenServer itself), and any stray message.
  def handle_info(message, state) do
    Logger.debug("Wasmbeam.InstanceSupervisor.Keeper ignored #{inspect(message)}")
    {:noreply, state}
  end

  @impl true
  def handle_call(request, _from, state) do
    {:reply,
     {:error,
      Error.new(:argument, "not a request for an instance supervisor: #{inspect(request)}")},
     state}
  end

  @impl true
  def handle_cast(request, state) do
    Logger.debug("Wasmbeam.InstanceSupervisor.Keeper ignored the cast #{inspect(request)}")
    {:noreply, state}
  end

  # Stopped by its supervisor (stop_instance/2, or the supervisor's own
  # shutdown): the instance goes first, as a supervisor stops a child.
  @impl true
  def terminate(_reason, %{instance: pid}) when is_pid(pid) do
    Process.exit(pid, :shutdown)

    receive do
      {:EXIT, ^pid, _} -> :ok
    after
      @instance_shutdown ->
        Process.exit(pid, :kill)

        receive do
          {:EXIT, ^pid, _} -> :ok
        end
    end
  end

  def terminate(_reason, _state), do: :ok

  # As for a `:transient` child: these exits are not failures.
  defp stopped_on_purpose?(:normal), do: true
  defp stopped_on_purpose?(:shutdown), do: true
  defp stopped_on_purpose?({:shutdown, _}), do: true
  defp stopped_on_purpose?(_), do: false

  defp restart(state, reason) do
    %{max_restarts: max_restarts, max_seconds: max_seconds} = state.policy
    now = System.monotonic_time(:millisecond)
    since = now - max_seconds * 1_000
    restarts = [now | Enum.filter(state.restarts, &(&1 > since))]
    state = %{state | restarts: restarts}

    if length(restarts) > max_restarts do
      give_up(state, reason)
    else
      Wasmbeam.Telemetry.execute(
        [:wasmbeam, :instance_supervisor, :restart],
        %{restarts: length(restarts)},
        %{key: state.key, reason: reason}
      )

      case start_instance(state) do
        {:ok, pid} ->
          {:noreply, %{state | instance: pid}}

        {:error, error} ->
          send(self(), {:"$wasmbeam_retry", error})
          {:noreply, state}
      end
    end
  end

  defp give_up(state, reason) do
    %{max_restarts: max_restarts, max_seconds: max_seconds} = state.policy

    Logger.error(
      "Wasmbeam.InstanceSupervisor gave up the instance #{inspect(state.key)}: " <>
        "it failed more than #{max_restarts} time(s) in #{max_seconds} s; " <>
        "last reason: #{format_reason(reason)}"
    )

    Wasmbeam.Telemetry.execute(
      [:wasmbeam, :instance_supervisor, :give_up],
      %{restarts: length(state.restarts)},
      %{key: state.key, reason: reason, max_restarts: max_restarts, max_seconds: max_seconds}
    )

    notify(state.notify, {:wasmbeam_instance_gave_up, state.key, reason})
    {:stop, :normal, state}
  end

  defp format_reason(%Error{} = error), do: Exception.message(error)
  defp format_reason(reason), do: inspect(reason)

  defp notify(nil, _message), do: :ok

  defp notify(dest, message) do
    send(dest, message)
    :ok
  rescue
    # A name nobody holds.
    ArgumentError -> :ok
  end
end
