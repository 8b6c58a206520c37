defmodule Wasmbeam.Starter do
  @moduledoc false
  # For processes whose `init/1` fails: `{:stop, reason}` makes start_link
  # return `{:error, reason}` but also sends the starter an exit signal,
  # which kills it unless it traps exits. Wasmbeam returns errors for bad
  # input rather than crashing its caller, so a failing init unlinks from
  # its starter first (a supervisor traps exits and is not affected).

  @doc false
  @spec unlink() :: true
  def unlink do
    case Process.get(:"$ancestors") do
      [starter | _] when is_pid(starter) -> Process.unlink(starter)
      [starter | _] when is_atom(starter) -> unlink_name(starter)
      _ -> true
    end
  end

  defp unlink_name(name) do
    case Process.whereis(name) do
      pid when is_pid(pid) -> Process.unlink(pid)
      nil -> true
    end
  end
end
