defmodule Mix.Tasks.Wasmbeam.RunTest do
  # Captures the VM-wide stderr: not async.
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO

  alias Mix.Tasks.Wasmbeam.Run
  alias Wasmbeam.Test.WasiFixtures

  setup_all do
    {:ok, tool: WasiFixtures.path!("wasi_tool")}
  end

  # Runs the task; returns {exit status, stdout, stderr}.
  defp run(argv, input \\ "") do
    parent = self()

    stderr =
      capture_io(:stderr, fn ->
        stdout =
          capture_io(input, fn ->
            status =
              try do
                Run.run(argv)
                0
              catch
                :exit, {:shutdown, code} -> code
              end

            send(parent, {:status, status})
          end)

        send(parent, {:stdout, stdout})
      end)

    assert_received {:status, status}
    assert_received {:stdout, stdout}
    {status, stdout, stderr}
  end

  test "runs a WASI command with its arguments", ctx do
    assert {0, "wasi_tool.wasm\nargs\n--not-an-option\n", ""} =
             run([ctx.tool, "--", "args", "--not-an-option"])
  end

  test "exits with the program's status and passes its stderr through", ctx do
    assert {9, "", ""} = run([ctx.tool, "--", "exit", "9"])
    assert {0, "", "to stderr"} = run([ctx.tool, "--", "stderr", "to stderr"])
  end

  test "forwards stdin", ctx do
    assert {0, "line one\nline two\n", ""} = run([ctx.tool, "--", "echo"], "line one\nline two\n")
  end

  test "--dir grants directories, read-write or read-only; --env sets variables", ctx do
    dir = Wasmbeam.Test.Tmp.path("wasmbeam-run")
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf!(dir) end)

    assert {0, "", ""} = run(["--dir", "#{dir}::/work", ctx.tool, "--", "write", "/work/a", "1"])
    assert File.read!(Path.join(dir, "a")) == "1"
    assert {0, "1", ""} = run(["--dir", "#{dir}::/work:ro", ctx.tool, "--", "cat", "/work/a"])

    assert {1, "", "error: " <> _} =
             run(["--dir", "#{dir}::/work:ro", ctx.tool, "--", "rm", "/work/a"])

    assert File.exists?(Path.join(dir, "a"))
    assert {1, "", _} = run([ctx.tool, "--", "cat", "/work/a"])

    assert {0, "A=1\nB=x=y\n", ""} =
             run(["--env", "A=1", "--env", "B=x=y", ctx.tool, "--", "env"])
  end

  test "--timeout and --fuel stop a runaway program with status 1", ctx do
    assert {1, "", stderr} = run(["--timeout", "50", ctx.tool, "--", "spin"])
    assert stderr =~ "(timeout)"

    assert {1, "", stderr} = run(["--fuel", "100000", ctx.tool, "--", "spin"])
    assert stderr =~ "(out_of_fuel)"
  end

  test "--invoke calls an export and prints its results" do
    assert {0, "832040\n", ""} = run(["--invoke", "fib", "examples/fib.wat", "30"])
    assert {1, "", stderr} = run(["--invoke", "fib", "examples/fib.wat", "x"])
    assert stderr =~ "cannot read"
  end

  test "-W switches proposals as the Wasmtime CLI does" do
    wat = "test/fixtures/exceptions.wat"
    assert {0, "42\n", ""} = run(["--invoke", "catch", wat, "41"])
    assert {0, "42\n", ""} = run(["-W", "exceptions=y", "--invoke", "catch", wat, "41"])
    assert {1, "", stderr} = run(["-W", "exceptions=n", "--invoke", "catch", wat, "41"])
    assert stderr =~ "(validation)"
    assert {1, "", _} = run(["-W", "gc=n,exceptions=no", "--invoke", "catch", wat, "41"])
    assert {2, "", "-W: unknown proposal \"bogus\"" <> _} = run(["-W", "bogus", wat])
    assert {2, "", "-W exceptions takes y or n" <> _} = run(["-W", "exceptions=maybe", wat])
  end

  test "bad usage exits with 2; a missing file with 1", ctx do
    assert {2, "", "unknown or invalid option --bogus" <> _} = run(["--bogus", ctx.tool])
    assert {2, "", "missing FILE" <> _} = run([])
    assert {2, "", "--dir takes" <> _} = run(["--dir", "::", ctx.tool])
    assert {1, "", "error: " <> _} = run(["/no/such/file.wasm"])
  end
end
