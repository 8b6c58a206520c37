defmodule Wasmbeam.Driver do
  @moduledoc false
  # Drives guest code to completion from the calling process.
  #
  # A NIF that starts guest code runs it for one time slice (about 100 µs)
  # and returns either the result or `:continue`. On `:continue` the
  # process yields to the BEAM scheduler, like a process out of
  # reductions, and polls again with `store_resume/1`. Only the process that
  # started a call can resume it; if that process dies, the store's monitor
  # cancels the call and the store is usable again.

  @spec finish(term(), reference()) :: {:ok, term()} | {:error, Wasmbeam.Error.t()}
  def finish(:continue, store_ref) do
    :erlang.yield()
    finish(Wasmbeam.Native.store_resume(store_ref), store_ref)
  end

  def finish(result, _store_ref), do: result
end
