defmodule MyApp.Test.Jobs do
  @moduledoc false
  # Oban's own telemetry, forwarded to the test process: the way the tests
  # wait for jobs (never a sleep).

  @events [[:oban, :job, :start], [:oban, :job, :stop], [:oban, :job, :exception]]

  @doc """
  Sends `{:job, :start | :stop | :exception, job_id, pid, metadata}` to the
  calling process for every job of `worker`, until the test ends.
  """
  def forward_job_events(worker) do
    test = self()
    id = "jobs-#{inspect(test)}-#{System.unique_integer()}"

    :telemetry.attach_many(
      id,
      @events,
      fn [:oban, :job, edge], _measurements, %{job: %{worker: name, id: job_id}} = meta, _ ->
        if name == inspect(worker), do: send(test, {:job, edge, job_id, self(), meta})
      end,
      nil
    )

    ExUnit.Callbacks.on_exit(fn -> :telemetry.detach(id) end)
  end

  @doc """
  Turns Wasmbeam's per-call events on and sends `{:guest, export, pid}` to
  the calling process when a guest call starts, until the test ends: how
  the tests see a job's guest running.
  """
  def forward_guest_starts do
    Wasmbeam.Telemetry.call_events(true)
    test = self()
    id = "guest-start-#{inspect(test)}-#{System.unique_integer()}"

    :telemetry.attach(
      id,
      [:wasmbeam, :call, :start],
      fn _, _, %{export: export}, _ -> send(test, {:guest, export, self()}) end,
      nil
    )

    ExUnit.Callbacks.on_exit(fn ->
      :telemetry.detach(id)
      Wasmbeam.Telemetry.call_events(false)
    end)
  end
end
