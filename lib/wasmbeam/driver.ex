defmodule Wasmbeam.Driver do
  @moduledoc false
  # Drives guest code to completion from the calling process.
  #
  # A NIF that starts (or resumes) guest code runs it for one time slice
  # (about 100 µs) and returns one of:
  #
  #   * the result (`{:ok, _}` or `{:error, _}`)
  #   * `:continue`: the slice is used up; the process yields to the BEAM
  #     scheduler, like a process out of reductions, and polls again
  #   * `{:host_call, handler, args, caller}`: the guest called an import
  #     implemented in Elixir; the handler runs here (or in its handler
  #     process) and its answer resumes the guest
  #
  # If the process dies mid-call, the store's monitor cancels the call and
  # the store is usable again.

  alias Wasmbeam.{HostCall, Native}

  @spec finish(term(), reference()) :: {:ok, term()} | {:error, Wasmbeam.Error.t()}
  def finish(:continue, store_ref) do
    :erlang.yield()
    finish(Native.store_resume(store_ref), store_ref)
  end

  def finish({:host_call, handler, args, caller}, store_ref) do
    answer = HostCall.run(handler, caller, args)
    finish(Native.store_answer(store_ref, caller.id, answer), store_ref)
  end

  def finish(result, _store_ref), do: result
end
