defmodule Wasmbeam.SharedPipeReadersTest do
  # Regression (native review 2026-12, item 2, the related bug): one
  # `Wasmbeam.Wasi.Pipe` may be the stdin of several stores. Decision:
  # every reader waiting on the pipe is woken by a write or by `close/1`
  # (the pipe used to keep one waker, so the first reader to park was
  # never woken, not even at end-of-file).
  use ExUnit.Case, async: true

  import Wasmbeam.Test.Wat, only: [eventually: 1]

  alias Wasmbeam.{Module, Wasi}
  alias Wasmbeam.Wasi.Pipe
  alias Wasmbeam.Test.WasiFixtures

  setup_all do
    {:ok, tool: Module.compile_file!(WasiFixtures.path!("wasi_tool"))}
  end

  test "two programs reading one pipe are both woken, and both see end-of-file", ctx do
    pipe = Pipe.new()

    # `echo` copies stdin to stdout until end-of-file. The timeout only
    # bounds the test when a reader is never woken.
    run = fn -> Wasi.run(ctx.tool, args: ["echo"], stdin: pipe, timeout: 2_000) end

    a = Task.async(run)
    assert eventually(fn -> parked_in_driver?(a.pid) end), "reader A never parked"
    b = Task.async(run)
    assert eventually(fn -> parked_in_driver?(b.pid) end), "reader B never parked"

    :ok = Pipe.write(pipe, "first")
    :ok = Pipe.write(pipe, "second")
    :ok = Pipe.close(pipe)

    result_a = Task.await(a, 5_000)
    result_b = Task.await(b, 5_000)

    # Reader A parked first: its waker is the one that used to be lost.
    assert {:ok, %{exit_code: 0, stdout: out_a}} = result_a
    assert {:ok, %{exit_code: 0, stdout: out_b}} = result_b

    # Each write is taken whole by one reader, so together they read the
    # two writes, in order, once.
    assert out_a <> out_b == "firstsecond" or out_b <> out_a == "firstsecond",
           "the readers read #{inspect(out_a)} and #{inspect(out_b)}"
  end

  # Waiting in the driver's `receive` for the wake of an I/O wait (not,
  # say, in the code server loading a module on first use).
  defp parked_in_driver?(pid) do
    case Process.info(pid, [:status, :current_function]) do
      [status: :waiting, current_function: {Wasmbeam.Driver, _, _}] -> true
      _ -> false
    end
  end
end
