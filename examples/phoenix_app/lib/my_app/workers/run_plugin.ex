defmodule MyApp.Workers.RunPlugin do
  @moduledoc """
  Runs one export of the trusted plugin as an Oban job, through
  `Wasmbeam.Job.run/4`: the worker README.md shows. A trap cancels the job
  (a retry would trap again), a timeout returns an error (Oban retries it
  with its backoff), an overloaded pool snoozes it.

  Args: `"export"`, `"args"` (JSON values, converted by the export's
  parameter types), and optionally `"timeout"`, the guest's deadline in ms
  (default 10 s), and `"job_timeout"`, Oban's own limit for the whole job
  (default none): Oban stops the job's process when it passes, and with it
  the guest.
  """

  # README: worker
  use Oban.Worker, queue: :wasm, max_attempts: 5

  @impl Oban.Worker
  def perform(%Oban.Job{args: %{"export" => export, "args" => args} = job_args}) do
    timeout = Map.get(job_args, "timeout", 10_000)
    Wasmbeam.Job.run({:pool, MyApp.JobPlugins}, export, args, timeout: timeout, snooze: 10)
  end

  @impl Oban.Worker
  def timeout(%Oban.Job{args: args}), do: Map.get(args, "job_timeout", :infinity)

  # README: end
end
