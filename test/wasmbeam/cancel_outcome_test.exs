defmodule Wasmbeam.CancelOutcomeTest do
  # Regression (native review 2026-12, item 4): cancelling says what
  # happened. `store_cancel/1` answers `:ok` when the run stopped and the
  # store is usable, `:idle` when no call was running, and a `:poisoned`
  # error when the store is lost (already, or by this cancel); an instance
  # process that loses its store by a cancel exits before an unrelated
  # caller can find out.
  use ExUnit.Case, async: true

  import Wasmbeam.Test.Wat, only: [eventually: 1]

  alias Wasmbeam.{Error, Instance, InstanceSupervisor, Module, Native}
  alias Wasmbeam.Instance.Server
  alias Wasmbeam.Wasi.Pipe

  # `read_stdin` parks in a WASI read of stdin: on an empty open pipe it
  # waits in host I/O, where no epoch check can stop it.
  @wat ~S[(module
    (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
    (memory (export "memory") 1)
    (func (export "read_stdin") (result i32)
      (i32.store (i32.const 0) (i32.const 100))
      (i32.store (i32.const 4) (i32.const 64))
      (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
      (i32.load (i32.const 8)))
    (func (export "answer") (result i32) i32.const 42))]

  setup_all do
    {:ok, compiled: Module.compile!(@wat)}
  end

  defp reader(ctx), do: Instance.new!(ctx.compiled, %{}, wasi: [stdin: Pipe.new()])

  test "cancel on a store with no running call answers :idle", ctx do
    instance = reader(ctx)
    assert Native.store_cancel(instance.store.ref) == :idle
    assert {:ok, [42]} = Instance.call(instance, "answer", [])
    assert Native.store_cancel(instance.store.ref) == :idle
  end

  test "cancel on a poisoned store answers a :poisoned error, not :idle", ctx do
    instance = reader(ctx)

    # A deadline that passes while the guest waits in host I/O loses the store.
    assert {:error, %Error{kind: :timeout}} =
             Instance.call(instance, "read_stdin", [], timeout: 50)

    refute Native.store_usable(instance.store.ref)

    assert {:error, %Error{kind: :poisoned}} = Native.store_cancel(instance.store.ref)
  end

  test "a cancel that loses the store answers a :poisoned error, not :ok", ctx do
    instance = reader(ctx)
    store = instance.store.ref
    {:ok, native} = Wasmbeam.CallOptions.to_native([])

    # Drive the call by hand, as an instance process does, until the guest
    # is parked in its stdin read; this process is then its driver.
    assert {:io_wait, _store_id, _} =
             instance.ref
             |> Native.instance_call(instance.store.ref, "read_stdin", [], native)
             |> until_parked(store)

    result = Native.store_cancel(store)
    flush_wakes()

    refute Native.store_usable(store)
    assert {:error, %Error{kind: :poisoned}} = result
  end

  @tag :capture_log
  test "an instance process that loses its store by a cancel exits before the next caller finds out",
       ctx do
    key = {__MODULE__, make_ref()}

    {:ok, old} =
      InstanceSupervisor.start_instance(key,
        module: ctx.compiled,
        instance_options: [wasi: [stdin: Pipe.new()]]
      )

    on_exit(fn -> InstanceSupervisor.stop_instance(key) end)
    down = Process.monitor(old)

    {:ok, request} = Server.async_call(old, "read_stdin", [])
    assert eventually(fn -> parked?(old) end), "the call never parked in its stdin read"

    Server.cancel(request)
    # An unrelated caller, after the cancel, of the same process.
    next = Task.async(fn -> Instance.call(old, "answer", [], timeout: 1_000) end)

    assert {:error, %Error{kind: :cancelled}} = Server.await(request)
    next_result = Task.await(next, 5_000)

    refute match?({:error, %Error{kind: :poisoned}}, next_result),
           "the next caller was handed the lost store: #{inspect(next_result)}"

    assert match?({:error, %Error{kind: :down}}, next_result) or next_result == {:ok, [42]},
           "unexpected answer to the next caller: #{inspect(next_result)}"

    assert_receive {:DOWN, ^down, :process, ^old, {:wasmbeam_poisoned, _}}, 5_000

    # Its supervisor starts a fresh instance under the same key.
    server = InstanceSupervisor.via(key)

    assert eventually(fn ->
             new = GenServer.whereis(server)
             is_pid(new) and new != old
           end)

    assert {:ok, [42]} = Instance.call(server, "answer", [], timeout: 1_000)
  end

  # Whether the server's running call waits for I/O.
  defp parked?(server) do
    case :sys.get_state(server) do
      %{running: %{parked: parked}} -> parked
      # (another shape of state: only the public view is left)
      _ -> match?({:ok, %{running: true}}, Server.info(server))
    end
  end

  defp until_parked(:continue, store), do: store |> Native.store_resume() |> until_parked(store)
  defp until_parked(step, _store), do: step

  defp flush_wakes do
    receive do
      {:wasmbeam_wake, _} -> flush_wakes()
    after
      0 -> :ok
    end
  end
end
