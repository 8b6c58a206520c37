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

  Instances are `:transient` children: one that stops normally
  (`Wasmbeam.Instance.stop/1`, `stop_instance/2`) stays stopped; one that
  exits abnormally is restarted with a fresh instance of its module, under
  the same name. A trap, a timeout or exhausted fuel is not a crash: the
  caller gets the error and the instance keeps its state. A poisoned store
  (a native failure that leaves the store's state unknown) or a crash of the
  process is: the next calls reach a fresh instance. Restarts are bounded by
  the supervisor's intensity (3 in 5 s by default), after which it gives up.
  """

  use DynamicSupervisor

  alias Wasmbeam.Error

  @registry Wasmbeam.InstanceRegistry

  @doc """
  Starts a supervisor for instance processes. Options are those of
  `DynamicSupervisor.start_link/1` (`:name`, `:max_restarts`,
  `:max_seconds`, ...).

  ## Examples

      iex> {:ok, sup} = Wasmbeam.InstanceSupervisor.start_link([])
      iex> DynamicSupervisor.count_children(sup).active
      0
  """
  @spec start_link(keyword()) :: Supervisor.on_start()
  def start_link(options) do
    {init, options} = Keyword.split(options, [:max_restarts, :max_seconds])
    DynamicSupervisor.start_link(__MODULE__, init, options)
  end

  @impl true
  def init(options), do: DynamicSupervisor.init([strategy: :one_for_one] ++ options)

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
  `:supervisor` (default `Wasmbeam.InstanceSupervisor`). Returns
  `{:error, {:already_started, pid}}` when `key` is taken.

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

    spec =
      options
      |> Keyword.merge(name: via(key), id: key, restart: :transient)
      |> Wasmbeam.Instance.child_spec()

    case DynamicSupervisor.start_child(supervisor, spec) do
      # The child's own {:error, %Error{}} from start_link/1 comes back as is.
      {:error, %Error{}} = error -> error
      other -> other
    end
  end

  def start_instance(_key, options),
    do: {:error, Error.new(:argument, "options must be a keyword list, got: #{inspect(options)}")}

  @doc """
  The pid of the instance registered as `key`, or `nil`.

  ## Examples

      iex> Wasmbeam.InstanceSupervisor.whereis(:nobody_here)
      nil
  """
  @spec whereis(term()) :: pid() | nil
  def whereis(key) do
    case Registry.lookup(@registry, key) do
      [{pid, _}] -> pid
      [] -> nil
    end
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
    with pid when is_pid(pid) <- whereis(key),
         :ok <- DynamicSupervisor.terminate_child(supervisor, pid) do
      :ok
    else
      _ ->
        {:error, Error.new(:down, "no instance process is registered as #{inspect(key)}")}
    end
  end
end
