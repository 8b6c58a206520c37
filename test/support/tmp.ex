defmodule Wasmbeam.Test.Tmp do
  @moduledoc false
  # Paths in the system's temporary directory that no other test run
  # uses. System.unique_integer/1 is unique within one VM only, and small
  # and alike from run to run, so other worktrees' runs and bin/test's
  # two Elixir versions, running at the same time, would share (and
  # delete) each other's files: the OS process id tells the VMs apart.

  @doc "A new path `<tmp>/<prefix>-<OS pid>-<unique integer><suffix>`; nothing is created."
  @spec path(String.t(), String.t()) :: Path.t()
  def path(prefix, suffix \\ "") do
    Path.join(
      System.tmp_dir!(),
      "#{prefix}-#{System.pid()}-#{System.unique_integer([:positive])}#{suffix}"
    )
  end
end
