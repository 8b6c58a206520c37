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
  #   * `{:host_call, registry, index, args, id}`: the guest called an import
  #     implemented in Elixir; the handler runs here (or in its handler
  #     process) and its answer resumes the guest
  #   * `{:io_wait, store_id, ms_left}`: the guest waits for I/O (a WASI
  #     read from a pipe, a file operation, a sleep); the process waits in
  #     `receive` for `{:wasmbeam_wake, store_id}`, holding no thread, until
  #     the I/O wakes it or its deadline passes
  #
  # If the process dies mid-call, the store's monitor cancels the call and
  # the store is usable again.

  alias Wasmbeam.{Error, HostCall, Native}

  @doc false
  # Starts a run with `start.(native_options)`. When the store is running
  # another call and the options say to wait, the NIF queues this process
  # and answers `{:wait, store_id}`; the process sleeps until the store
  # tells it that it is free, then tries again, with what is left of its
  # timeout. (The deadline is taken at the first `:wait`: the attempt
  # before it ran no guest code.)
  @spec run(reference(), map(), (map() -> term())) :: {:ok, term()} | {:error, Error.t()}
  def run(store_ref, %{timeout: 0, wait: true} = native_options, start),
    # No time to wait: not queued at all (a queued process is told when
    # the store frees, even after it gave up).
    do: attempt(store_ref, %{native_options | wait: false}, start, nil)

  def run(store_ref, native_options, start), do: attempt(store_ref, native_options, start, nil)

  defp attempt(store_ref, options, start, deadline) do
    case start.(options) do
      {:wait, store_id} ->
        wait(store_id, store_ref, options, start, deadline || deadline(options))

      first ->
        finish(first, store_ref)
    end
  end

  defp deadline(%{timeout: nil}), do: :infinity
  defp deadline(%{timeout: ms}), do: System.monotonic_time(:millisecond) + ms

  #
  # Giving up leaves no message behind: the process takes itself out of
  # the store's queue (`Native.store_unwait/1`); when it was no longer
  # queued, the store has told it already, and that one message is taken
  # out of the mailbox. A retry with no time left does not queue again.
  defp wait(store_id, store_ref, options, start, deadline) do
    receive do
      {:wasmbeam_store_idle, ^store_id} ->
        case remaining(deadline) do
          :infinity -> attempt(store_ref, options, start, deadline)
          0 -> attempt(store_ref, %{options | timeout: 0, wait: false}, start, deadline)
          ms -> attempt(store_ref, %{options | timeout: ms}, start, deadline)
        end
    after
      remaining(deadline) ->
        unless Native.store_unwait(store_ref) do
          # Freed just as the wait ended: the store told this process
          # already; its message is sent or on the way.
          receive do
            {:wasmbeam_store_idle, ^store_id} -> :ok
          after
            # Never expected: every path that dequeues a waiter tells it.
            5_000 -> :ok
          end
        end

        {:error, Error.new(:busy, "another call kept the store busy for the whole timeout")}
    end
  end

  defp remaining(:infinity), do: :infinity
  defp remaining(deadline), do: max(deadline - System.monotonic_time(:millisecond), 0)

  @doc false
  # Drives a started run to its end: the first step is what the NIF that
  # started or resumed it returned.
  #
  # A call that has used two slices (`:continue`) is long-running work: for
  # the rest of the call the process runs at `:low` priority (when it was
  # at `:normal`; a process that chose `:high`, `:max` or `:low` keeps its
  # choice), and its priority is restored when the call returns, raises or
  # throws. A process woken at normal priority, a `Process.sleep/1` ending
  # or a message arriving, then runs before the spinning guests instead of
  # behind one slice of each of them; the guests still get every scheduler
  # turn nobody else wants, and a low-priority process is never starved
  # (the BEAM interleaves it with normal ones, selecting it less often).
  # The NIF that answered `:continue` reported a whole time slice used, so
  # the process is scheduled out at its next call anyway, like one out of
  # reductions: no `:erlang.yield/0` (it would queue it twice).
  @spec finish(term(), reference()) :: {:ok, term()} | {:error, Wasmbeam.Error.t()}
  def finish(step, store_ref), do: drive(step, store_ref, :foreground)

  # The first slice ends at the next tick, which may come a microsecond
  # after the call began: only a second slice shows that the call has run
  # for at least one whole tick.
  defp drive(:continue, store_ref, :foreground),
    do: drive(Native.store_resume(store_ref), store_ref, :second_slice)

  defp drive(:continue, store_ref, :second_slice) do
    if lower_priority() do
      try do
        drive(Native.store_resume(store_ref), store_ref, :background)
      after
        Process.flag(:priority, :normal)
      end
    else
      drive(Native.store_resume(store_ref), store_ref, :background)
    end
  end

  defp drive(:continue, store_ref, mode),
    do: drive(Native.store_resume(store_ref), store_ref, mode)

  defp drive({:host_call, registry, index, args, id}, store_ref, mode) do
    answer = HostCall.answer(registry, index, args, store_ref, id)
    drive(deliver(store_ref, id, answer), store_ref, mode)
  end

  defp drive({:io_wait, store_id, ms_left}, store_ref, mode) do
    receive do
      {:wasmbeam_wake, ^store_id} -> drive(Native.store_resume(store_ref), store_ref, mode)
    after
      ms_left || :infinity ->
        result = Native.store_io_timeout(store_ref)

        # A wake that raced with the deadline must not stay in the mailbox.
        receive do
          {:wasmbeam_wake, ^store_id} -> :ok
        after
          0 -> :ok
        end

        result
    end
  end

  # A component's result too large to encode on a normal scheduler.
  defp drive({:dirty_result, _store_id}, store_ref, _mode),
    do: Native.component_take_result(store_ref)

  defp drive(result, _store_ref, _mode), do: result

  @doc false
  # Puts the calling process at `:low` priority for a long call, if it is
  # at `:normal`; returns whether it did (then the caller restores
  # `:normal` when the call ends). Any other priority was chosen: kept.
  @spec lower_priority() :: boolean()
  def lower_priority do
    case Process.flag(:priority, :low) do
      :normal ->
        true

      chosen ->
        Process.flag(:priority, chosen)
        false
    end
  end

  @doc false
  # One step of a call driven by an instance process: answers host calls
  # (they run here, in the driving process) until the guest either
  # finishes or uses up its slice. Returns `:continue` instead of polling
  # again, so the process can handle other messages before it resumes the
  # call with `Native.store_resume/1`.
  # A guest waiting for I/O comes back as `{:io_wait, store_id, ms_left}`:
  # the process resumes it when `{:wasmbeam_wake, store_id}` arrives.
  @spec settle(term(), reference()) ::
          :continue
          | {:io_wait, pos_integer(), non_neg_integer() | nil}
          | {:ok, term()}
          | {:error, Error.t()}
  def settle({:host_call, registry, index, args, id}, store_ref) do
    answer = HostCall.answer(registry, index, args, store_ref, id)
    settle(deliver(store_ref, id, answer), store_ref)
  end

  def settle({:dirty_result, _store_id}, store_ref),
    do: Native.component_take_result(store_ref)

  def settle(step, _store_ref), do: step

  # Answers a host call. A component handler's answer too large to decode
  # on a normal scheduler comes back as `:dirty` (nothing delivered) and is
  # delivered from a dirty one.
  defp deliver(store_ref, id, answer) do
    case Native.store_answer(store_ref, id, answer) do
      :dirty -> deliver_dirty(store_ref, id, answer)
      step -> step
    end
  end

  # A function of its own so that tests can see the dirty path taken (a
  # NIF's calls cannot be traced).
  defp deliver_dirty(store_ref, id, answer), do: Native.store_answer_dirty(store_ref, id, answer)
end
