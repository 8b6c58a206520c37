defmodule Wasmbeam.Test.Blocked do
  @moduledoc false
  # Asserts that a process waits for its guest without holding a thread:
  # it sits in `receive` inside `Wasmbeam.Driver` (waiting for a wake
  # message), not running and not in a NIF.

  import ExUnit.Assertions

  # Checked again each time the process is scheduled out (a trace
  # message), until it is.
  def assert_blocked_in_receive(pid) do
    :erlang.trace(pid, true, [:running])

    try do
      wait_blocked(pid)
    after
      :erlang.trace(pid, false, [:running])
      flush_running_traces(pid)
    end
  end

  defp wait_blocked(pid) do
    case Process.info(pid, [:status, :current_function]) do
      [status: :waiting, current_function: {Wasmbeam.Driver, :drive, 3}] ->
        :ok

      other ->
        receive do
          {:trace, ^pid, :out, _} -> wait_blocked(pid)
        after
          5_000 ->
            flunk("expected #{inspect(pid)} to wait in Wasmbeam.Driver, got #{inspect(other)}")
        end
    end
  end

  defp flush_running_traces(pid) do
    receive do
      {:trace, ^pid, event, _} when event in [:in, :out] -> flush_running_traces(pid)
    after
      0 -> :ok
    end
  end
end
