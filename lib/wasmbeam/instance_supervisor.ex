defmodule Wasmbeam.InstanceSupervisor do
  @moduledoc """
  Starts instance processes on demand, under supervision, registered by
  any term in `Wasmbeam.InstanceRegistry`.

  Wasmbeam's application runs one of these (a `DynamicSupervisor` named
  `Wasmbeam.InstanceSupervisor`) next to the registry, so an application
  can start named instances without adding anything to its own tree:

      {:ok, _pid} = Wasmbeam.InstanceSupervisor.start_instance({:tenant, 42}, module: module)
      Wasmbeam.Instance.call(Wasmbeam.InstanceSupervisor.via({:tenant, 42}), "run", [])

  An application that wants its instances inside its own tree starts its
  own: `{Wasmbeam.InstanceSupervisor, name: MyApp.Instances}`, and passes
  `supervisor: MyApp.Instances` to `start_instance/3`.

  ## Restarts

  An instance that stops normally (`Wasmbeam.Instance.stop/1`,
  `stop_instance/2`) stays stopped; one that exits abnormally is restarted
  with a fresh instance of its module, under the same name. A trap, a
  timeout or exhausted fuel is not a crash: the caller gets the error and
  the instance keeps its state. A poisoned store (a native failure that
  leaves the store's state unknown, or a store lost by a call stopped while
  its guest waited in host I/O) or a crash of the process is: the next
  calls reach a fresh instance.

  Restarts are counted **for each instance alone**: an instance restarted
  more than `:max_restarts` times in `:max_seconds` (3 in 5 s by default)
  is given up. Its process stays down (calls to its name get a `:down`
  error, `whereis/1` answers `nil`), an error is logged, and the process
  given as `:notify` to `start_instance/2`, if any, receives

      {:wasmbeam_instance_gave_up, key, last_exit_reason}

  A given-up instance never takes anything else with it: the supervisor,
  the other instances, the registry and the rest of Wasmbeam's application
  keep running whatever the rate of failures, and the key can be started
  again. (Each instance runs under a small supervising process of its own,
  a child of this supervisor that never fails; this supervisor restarts
  nothing itself.)
  """

  use DynamicSupervisor

  alias Wasmbeam.Error
  alias Wasmbeam.InstanceSupervisor.Keeper

  @registry Wasmbeam.InstanceRegistry
  @default_policy %{max_restarts: 3, max_seconds: 5}

  @doc """
  Starts a supervisor for instance processes. Options are those of
  `DynamicSupervisor.start_link/1` (`:name`, `:max_children`, ...), but
  `:max_restarts` (default 3) and `:max_seconds` (default 5) bound the
  restarts of each instance (see "Restarts").

  ## Examples

      iex> {:ok, sup} = Wasmbeam.InstanceSupervisor.start_link([])
      iex> DynamicSupervisor.count_children(sup).active
      0
  """
  @spec start_link(keyword()) :: Supervisor.on_start() | {:error, Error.t()}
  def start_link(options) do
    {policy, options} = Keyword.split(options, [:max_restarts, :max_seconds])

    with {:ok, policy} <- restart_policy(policy),
         do: DynamicSupervisor.start_link(__MODULE__, policy, options)
  end

  defp restart_policy(options) do
    Enum.reduce_while(options, {:ok, @default_policy}, fn
      {:max_restarts, n}, {:ok, policy} when is_integer(n) and n >= 0 ->
        {:cont, {:ok, %{policy | max_restarts: n}}}

      {:max_seconds, n}, {:ok, policy} when is_integer(n) and n > 0 ->
        {:cont, {:ok, %{policy | max_seconds: n}}}

      {:max_restarts, n}, _ ->
        {:halt, policy_error(":max_restarts must be a non-negative integer, got: #{inspect(n)}")}

      {:max_seconds, n}, _ ->
        {:halt, policy_error(":max_seconds must be a positive integer, got: #{inspect(n)}")}
    end)
  end

  defp policy_error(message), do: {:error, Error.new(:argument, message)}

  # Every child is a keeper (one per instance) started with the restart
  # policy as its first argument.
  @impl true
  def init(policy),
    do: DynamicSupervisor.init(strategy: :one_for_one, extra_arguments: [policy])

  @doc """
  The name under which `start_instance/3` registers the instance `key`:
  pass it wherever an instance process is expected.

  ## Examples

      iex> Wasmbeam.InstanceSupervisor.via(:my_plugin)
      {:via, Registry, {Wasmbeam.InstanceRegistry, :my_plugin}}
  """
  @spec via(term()) :: {:via, Registry, {module(), term()}}
  def via(key), do: {:via, Registry, {@registry, key}}

  @doc """
  Starts an instance process registered as `key` (see `via/1`). `options`
  are those of `Wasmbeam.Instance.start_link/1` (without `:name`), plus

    * `:supervisor` - the instance supervisor to start it under (default
      `Wasmbeam.InstanceSupervisor`)
    * `:notify` - a pid or registered name told
      `{:wasmbeam_instance_gave_up, key, reason}` if the instance fails too
      often and is given up (see "Restarts")

  Returns `{:ok, pid}` (the instance process), the instance's
  `{:error, %Wasmbeam.Error{}}` when it cannot start, a `:down` error when
  `supervisor` is not running, or `{:error, {:already_started, pid}}` when
  `key` is taken.

  ## Examples

      iex> module = Wasmbeam.Module.compile!(~S[(module (func (export "one") (result i32) i32.const 1))])
      iex> {:ok, pid} = Wasmbeam.InstanceSupervisor.start_instance(:doc_one, module: module)
      iex> Wasmbeam.Instance.call(Wasmbeam.InstanceSupervisor.via(:doc_one), "one", [])
      {:ok, [1]}
      iex> {:error, {:already_started, ^pid}} = Wasmbeam.InstanceSupervisor.start_instance(:doc_one, module: module)
      iex> Wasmbeam.InstanceSupervisor.stop_instance(:doc_one)
      :ok
  """
  @spec start_instance(term(), keyword()) ::
          DynamicSupervisor.on_start_child() | {:error, Error.t()}
  def start_instance(key, options) when is_list(options) do
    {supervisor, options} = Keyword.pop(options, :supervisor, __MODULE__)
    {notify, options} = Keyword.pop(options, :notify)

    spec = %{
      id: key,
      start: {Keeper, :start_link, [key, Keyword.drop(options, [:name, :id, :restart]), notify]},
      restart: :temporary,
      shutdown: Keeper.shutdown(),
      type: :worker
    }

    with :ok <- check_notify(notify), do: start_child(supervisor, spec)
  end

  def start_instance(_key, options),
    do: {:error, Error.new(:argument, "options must be a keyword list, got: #{inspect(options)}")}

  defp check_notify(notify) when is_pid(notify) or is_atom(notify), do: :ok

  defp check_notify(other),
    do:
      {:error,
       Error.new(:argument, ":notify must be a pid or a registered name, got: #{inspect(other)}")}

  defp start_child(supervisor, spec) do
    case DynamicSupervisor.start_child(supervisor, spec) do
      {:ok, _keeper, instance} -> {:ok, instance}
      # The instance's own {:error, %Error{}} from start_link/1 comes back as is.
      {:error, %Error{}} = error -> error
      other -> other
    end
  catch
    :exit, reason ->
      {:error,
       Error.new(
         :down,
         "no instance supervisor is running as #{inspect(supervisor)}: #{inspect(reason)}"
       )}
  end

  @doc """
  The pid of the instance registered as `key`, or `nil`.

  ## Examples

      iex> Wasmbeam.InstanceSupervisor.whereis(:nobody_here)
      nil
  """
  @spec whereis(term()) :: pid() | nil
  def whereis(key) do
    case lookup(key) do
      {pid, _keeper} -> pid
      nil -> nil
    end
  end

  # The instance registered as `key` and its keeper (`nil` for a process
  # that registered itself with `via/1`).
  # A process that has exited may stay in the registry for a moment (the
  # registry removes it when it handles the exit): it is not found.
  defp lookup(key) do
    case Registry.lookup(@registry, key) do
      [{pid, keeper}] -> if Process.alive?(pid), do: {pid, if(is_pid(keeper), do: keeper)}
      [] -> nil
    end
  rescue
    # The registry is not running.
    ArgumentError -> nil
  end

  @doc """
  Stops the instance registered as `key` (it is not restarted). Returns
  `:ok`, or a `:down` error when none runs.

  ## Examples

      iex> Wasmbeam.InstanceSupervisor.stop_instance(:nobody_here)
      {:error, %Wasmbeam.Error{kind: :down, message: "no instance process is registered as :nobody_here"}}
  """
  @spec stop_instance(term(), GenServer.server()) :: :ok | {:error, Error.t()}
  def stop_instance(key, supervisor \\ __MODULE__) do
    with {_pid, keeper} when is_pid(keeper) <- lookup(key),
         :ok <- terminate_child(supervisor, keeper) do
      :ok
    else
      _ ->
        {:error, Error.new(:down, "no instance process is registered as #{inspect(key)}")}
    end
  end

  defp terminate_child(supervisor, keeper) do
    DynamicSupervisor.terminate_child(supervisor, keeper)
  catch
    :exit, _ -> {:error, :not_found}
  end
end
