defmodule Wasmbeam.NestedIoWaitTest do
  # Regression (native review 2026-12, item 1 and E3): a nested call made
  # through `Caller.call/3` by a `{:process, server}` handler runs in the
  # handler server. When the nested guest waits for I/O, the process that
  # polls it (the server) is the one that must be woken, not the process
  # that started the outer call.
  use ExUnit.Case, async: true

  import Wasmbeam.Test.Wat, only: [eventually: 1]

  alias Wasmbeam.{Caller, Instance, Module}
  alias Wasmbeam.Wasi.Pipe

  # `run` calls the host import `env.cb`; `read_stdin` reads up to 64
  # bytes of stdin (fd 0) and returns how many it read.
  @wat ~S[(module
    (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
    (import "env" "cb" (func $cb (result i32)))
    (memory (export "memory") 1)
    (func (export "run") (result i32) call $cb)
    (func (export "read_stdin") (result i32)
      (i32.store (i32.const 0) (i32.const 100))
      (i32.store (i32.const 4) (i32.const 64))
      (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
      (i32.load (i32.const 8))))]

  defmodule Handler do
    # The `{:process, server}` handler of `env.cb`: it reads stdin through
    # its caller, telling the test when it starts the nested call.
    use GenServer

    def init(test), do: {:ok, test}

    def handle_call({:wasmbeam_host_call, "env.cb", caller, []}, _from, test) do
      send(test, {:nested_call_starting, self()})

      case Caller.call(caller, "read_stdin", []) do
        {:ok, [n]} -> {:reply, [n], test}
        {:error, error} -> {:reply, {:nested_call_failed, error}, test}
      end
    end

    def handle_call(:ping, _from, test), do: {:reply, :pong, test}
  end

  test "the handler server is woken when the nested guest's stdin read can go on" do
    pipe = Pipe.new()
    {:ok, server} = GenServer.start_link(Handler, self())

    imports = %{"env" => %{"cb" => {:fn, [], [:i32], {:process, server, timeout: 1_000}}}}
    instance = Instance.new!(Module.compile!(@wat), imports, wasi: [stdin: pipe])

    outer =
      Task.async(fn ->
        result = Instance.call(instance, "run", [])
        {result, stray_wakes()}
      end)

    assert_receive {:nested_call_starting, ^server}, 5_000
    # The nested guest is parked in its stdin read: the server waits in
    # the driver's receive for its wake.
    assert eventually(fn -> parked_in_driver?(server) end),
           "the handler server never parked in the nested stdin read"

    :ok = Pipe.write(pipe, "hello")

    {result, wakes} = Task.await(outer, 5_000)

    assert result == {:ok, [5]},
           "the outer call should return the 5 bytes the nested call read, got: #{inspect(result)}"

    assert wakes == [], "the original caller got wake messages: #{inspect(wakes)}"

    assert GenServer.call(server, :ping, 1_000) == :pong,
           "the handler server no longer answers"
  end

  # Waiting in the driver's `receive` for the wake of an I/O wait (not,
  # say, in the code server loading a module on first use).
  defp parked_in_driver?(pid) do
    case Process.info(pid, [:status, :current_function]) do
      [status: :waiting, current_function: {Wasmbeam.Driver, _, _}] -> true
      _ -> false
    end
  end

  defp stray_wakes(acc \\ []) do
    receive do
      {:wasmbeam_wake, _} = wake -> stray_wakes([wake | acc])
    after
      0 -> Enum.reverse(acc)
    end
  end
end
