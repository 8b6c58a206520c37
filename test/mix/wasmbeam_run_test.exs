defmodule Mix.Tasks.Wasmbeam.RunTest do
  # Captures the VM-wide stderr: not async.
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO

  alias Mix.Tasks.Wasmbeam.Run

  doctest Mix.Wasmbeam.RunFlags
  alias Wasmbeam.Test.WasiFixtures

  setup_all do
    tool = WasiFixtures.path!("wasi_tool")
    # Compiled once here, so that no run below is slow enough (on a busy
    # machine) for the task to report its compile on the stderr compared.
    {:ok, _} = Wasmbeam.ModuleCache.compile_file(Wasmbeam.Engine.default(), tool)
    {:ok, tool: tool}
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

  describe "progress" do
    # A module no earlier run compiled: the cache misses it.
    defp fresh_module do
      n = System.unique_integer([:positive])
      path = Wasmbeam.Test.Tmp.path("wasmbeam-run-progress", ".wat")
      File.write!(path, ~s[(module (func (export "answer") (result i32) i32.const #{n}))])
      on_exit(fn -> File.rm(path) end)
      {path, Path.basename(path), "#{n}\n"}
    end

    defp with_progress_after(ms, fun) do
      System.put_env("WASMBEAM_PROGRESS_AFTER_MS", ms)

      try do
        fun.()
      after
        System.delete_env("WASMBEAM_PROGRESS_AFTER_MS")
      end
    end

    test "a quick load, compiled or cached, adds nothing to stderr", ctx do
      {path, _name, answer} = fresh_module()
      assert {0, ^answer, ""} = run(["--invoke", "answer", path])
      assert {0, ^answer, ""} = run(["--invoke", "answer", path])
      assert {0, "wasi_tool.wasm\nargs\n", ""} = run([ctx.tool, "--", "args"])
    end

    test "-v says where the module came from and how long the run took, on stderr", ctx do
      {path, name, answer} = fresh_module()

      assert {0, ^answer, stderr} = run(["-v", "--invoke", "answer", path])

      assert stderr =~
               ~r"\Awasmbeam: compiling #{name} \(1 KiB\)...\n\
wasmbeam: compiled #{name} \(1 KiB\) in \d+ ms \(cached for next time\)\n\
wasmbeam: called answer in \d+ ms\n\z"

      assert {0, ^answer, stderr} = run(["--verbose", "--invoke", "answer", path])
      assert stderr =~ ~r"\Awasmbeam: #{name} \(1 KiB\) was already loaded in this VM"

      # --fuel makes a new engine: not the module in memory, its artifact.
      assert {0, ^answer, stderr} = run(["-v", "--fuel", "1000", "--invoke", "answer", path])
      assert stderr =~ "wasmbeam: compiled #{name}"
      assert {0, ^answer, stderr} = run(["-v", "--fuel", "1000", "--invoke", "answer", path])
      assert stderr =~ ~r"\Awasmbeam: loaded #{name} \(1 KiB\) from the module cache in \d+ ms\n"

      # A WASI command: the program's output, then the task's last line,
      # on a line of its own.
      assert {0, "", stderr} = run(["-v", ctx.tool, "--", "stderr", "to stderr"])

      assert stderr =~
               ~r"\Awasmbeam: wasi_tool.wasm \(\d+ KiB\) [^\n]+\n\
to stderr\n\
wasmbeam: ran wasi_tool.wasm in \d+ ms \(exit status 0\)\n\z"

      assert {9, "", stderr} = run(["-v", ctx.tool, "--", "exit", "9"])
      assert stderr =~ ~r"\nwasmbeam: ran wasi_tool.wasm in \d+ ms \(exit status 9\)\n\z"
    end

    test "a load slower than WASMBEAM_PROGRESS_AFTER_MS is reported on stderr, never stdout",
         ctx do
      {path, name, answer} = fresh_module()

      with_progress_after("0", fn ->
        assert {0, ^answer, stderr} = run(["--invoke", "answer", path])

        assert stderr =~
                 ~r"\Awasmbeam: compiling #{name} \(1 KiB\)...\n\
wasmbeam: compiled #{name} \(1 KiB\) in \d+ ms \(cached for next time\)\n\z"

        # The program's output is untouched; no line about the run without -v.
        assert {0, "wasi_tool.wasm\nargs\nx\n", stderr} = run([ctx.tool, "--", "args", "x"])
        assert stderr =~ ~r"\A(wasmbeam: [^\n]*wasi_tool.wasm \(\d+ KiB\)[^\n]*\n)+\z"
      end)

      with_progress_after("soon", fn ->
        assert {2, "", "WASMBEAM_PROGRESS_AFTER_MS must be a number of milliseconds" <> _} =
                 run([path])
      end)
    end
  end

  describe "the Wasmtime CLI's -W, -S and --argv0" do
    test "-W fuel=, timeout= and the store limits bound the run", ctx do
      assert {1, "", stderr} = run(["-W", "fuel=1000000", ctx.tool, "--", "spin"])
      assert stderr =~ "(out_of_fuel)"
      assert {1, "", stderr} = run(["-W", "timeout=50ms", ctx.tool, "--", "spin"])
      assert stderr =~ "(timeout)"
      assert {1, "", stderr} = run(["-W", "max-memory-size=65536", ctx.tool, "--", "args"])
      assert stderr =~ "(limit)"

      assert {0, "wasi_tool.wasm\nargs\n", ""} =
               run([
                 "-W",
                 "max-memory-size=16777216,max-table-elements=1000",
                 ctx.tool,
                 "--",
                 "args"
               ])

      assert {0, "wasi_tool.wasm\nargs\n", ""} =
               run(["-W", "max-wasm-stack=1048576", ctx.tool, "--", "args"])

      # --timeout wins over -W timeout=.
      assert {0, _, ""} = run(["--timeout", "60000", "-W", "timeout=0", ctx.tool, "--", "args"])
    end

    test "--invoke runs a reactor's _initialize first, as the CLI does" do
      path = Wasmbeam.Test.Tmp.path("wasmbeam-run-reactor", ".wat")

      File.write!(path, ~S[(module
        (global $ready (mut i32) (i32.const 0))
        (func (export "_initialize") (global.set $ready (i32.add (global.get $ready) (i32.const 1))))
        (func (export "ready") (result i32) (global.get $ready)))])

      on_exit(fn -> File.rm(path) end)
      assert {0, "1\n", ""} = run(["--invoke", "ready", path])
    end

    test "a guest that exits during --invoke ends the task with its status" do
      path = Wasmbeam.Test.Tmp.path("wasmbeam-run-exit", ".wat")

      File.write!(path, ~S[(module
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (memory (export "memory") 1)
        (func (export "quit") (param i32) (call $exit (local.get 0))))])

      on_exit(fn -> File.rm(path) end)
      assert {3, "", ""} = run(["--invoke", "quit", path, "3"])
      assert {0, "", ""} = run(["--invoke", "quit", path, "0"])
    end

    test "-W flags Wasmbeam does not offer are refused with the reason", ctx do
      for flag <- ["trap-on-grow-failure", "unknown-imports-trap=y", "unknown-imports-default"] do
        assert {2, "", "-W " <> message} = run(["-W", flag, ctx.tool])
        assert message =~ "is not supported: "
      end

      assert {2, "", "-W timeout takes a duration" <> _} = run(["-W", "timeout=soon", ctx.tool])

      assert {2, "", "-W fuel takes a non-negative integer" <> _} =
               run(["-W", "fuel=-1", ctx.tool])
    end

    test "-S inherit-env passes the BEAM's environment, --env still wins; --argv0 names the program",
         ctx do
      System.put_env("WASMBEAM_RUN_INHERITED", "from the BEAM")
      on_exit(fn -> System.delete_env("WASMBEAM_RUN_INHERITED") end)

      assert {0, out, ""} = run(["-S", "inherit-env", ctx.tool, "--", "env"])
      assert out =~ "WASMBEAM_RUN_INHERITED=from the BEAM\n"

      assert {0, out, ""} =
               run([
                 "-S",
                 "inherit-env",
                 "--env",
                 "WASMBEAM_RUN_INHERITED=mine",
                 ctx.tool,
                 "--",
                 "env"
               ])

      assert out =~ "WASMBEAM_RUN_INHERITED=mine\n"
      assert {0, "", ""} = run(["-S", "inherit-env=n", ctx.tool, "--", "env"])
      assert {0, "tool\nargs\n", ""} = run(["--argv0", "tool", ctx.tool, "--", "args"])
    end

    test "-S inherit-network grants a component the network; without it, none" do
      probe = Wasmbeam.ComponentFixtures.path!("net_probe")
      {:ok, listen} = :gen_tcp.listen(0, [:binary, active: false, ip: {127, 0, 0, 1}])
      {:ok, port} = :inet.port(listen)

      server =
        Task.async(fn ->
          {:ok, socket} = :gen_tcp.accept(listen)
          {:ok, data} = :gen_tcp.recv(socket, 0)
          :ok = :gen_tcp.send(socket, "echo:" <> data)
          :gen_tcp.close(socket)
        end)

      call = ~s[send((127, 0, 0, 1), #{port}, "hi")]

      assert {0, ~s[err("create-tcp-socket: access-denied")\n], ""} =
               run(["--invoke", call, probe])

      assert {0, ~s[err("create-tcp-socket: access-denied")\n], ""} =
               run(["-S", "inherit-network,tcp=n", "--invoke", call, probe])

      assert {0, ~s[ok("echo:hi")\n], ""} =
               run(["-S", "inherit-network", "--invoke", call, probe])

      Task.await(server)
    end

    test "-S flags Wasmbeam does not offer are refused with the reason", ctx do
      assert {2, "", "-S http is not supported: " <> _} = run(["-S", "http", ctx.tool])
      assert {2, "", "-S: unknown WASI option \"bogus\"" <> _} = run(["-S", "bogus", ctx.tool])
      assert {2, "", "-S tcp takes y or n" <> _} = run(["-S", "tcp=maybe", ctx.tool])
    end
  end

  describe "components" do
    setup do
      component = WasiFixtures.component_path!("wasi_tool")
      {:ok, _} = Wasmbeam.ModuleCache.compile_file(Wasmbeam.Engine.default(), component)
      {:ok, component: component}
    end

    # The preview-1 program and the same program as a preview-2 command
    # component, run the same way: the same output, stderr and status
    # (but for statuses above 1, which the preview-1 adapter reports as 1).
    test "a WASI preview-2 command runs exactly like its preview-1 original", ctx do
      dir = Wasmbeam.Test.Tmp.path("wasmbeam-run-p2")
      File.mkdir_p!(dir)
      File.write!(Path.join(dir, "in.txt"), "from a file")
      on_exit(fn -> File.rm_rf!(dir) end)

      cases = [
        {["--", "args", "a b", "ü"], ""},
        {["--env", "A=1", "--", "env"], ""},
        {["--", "echo"], "line one\nline two\n"},
        {["--", "stderr", "to stderr"], ""},
        {["--", "exit", "0"], ""},
        {["--", "exit", "1"], ""},
        {["--dir", "#{dir}::/d:ro", "--", "cat", "/d/in.txt"], ""},
        {["--dir", "#{dir}::/d:ro", "--", "rm", "/d/in.txt"], ""},
        {["--", "cat", "/etc/passwd"], ""},
        {["--", "bytes"], ""}
      ]

      for {argv, input} <- cases do
        {options, ["--" | args]} = Enum.split_while(argv, &(&1 != "--"))
        {status, stdout, stderr} = run(options ++ [ctx.tool, "--" | args], input)
        stdout = String.replace(stdout, "wasi_tool.wasm", "wasi_tool.component.wasm")

        assert {^status, ^stdout, ^stderr} = run(options ++ [ctx.component, "--" | args], input),
               inspect(argv)
      end

      assert File.read!(Path.join(dir, "in.txt")) == "from a file"
      assert {1, "", ""} = run([ctx.component, "--", "exit", "9"])
      assert {1, "", stderr} = run(["--timeout", "50", ctx.component, "--", "spin"])
      assert stderr =~ "(timeout)"
    end

    test "--invoke reads the call in WAVE and prints the result in WAVE" do
      path = Wasmbeam.Test.Tmp.path("wasmbeam-run-component", ".wat")

      File.write!(path, ~S[(component
        (core module $m
          (func (export "add") (param i32 i32) (result i32)
            (i32.add (local.get 0) (local.get 1)))
          (func (export "nothing")))
        (core instance $i (instantiate $m))
        (func (export "add") (param "a" u32) (param "b" u32) (result u32)
          (canon lift (core func $i "add")))
        (func (export "nothing") (canon lift (core func $i "nothing"))))])

      on_exit(fn -> File.rm(path) end)

      assert {0, "5\n", ""} = run(["--invoke", "add(2, 3)", path])
      assert {0, "", ""} = run(["--invoke", "nothing()", path])
      assert {0, "", ""} = run(["--invoke", "nothing", path])
      assert {1, "", stderr} = run(["--invoke", "add(2, -3)", path])
      assert stderr =~ "(type)"
      assert {1, "", stderr} = run(["--invoke", "add(2", path])
      assert stderr =~ "WAVE"
      assert {1, "", stderr} = run(["--invoke", "sub(2, 3)", path])
      assert stderr =~ "(not_found)"
    end
  end

  test "bad usage exits with 2; a missing file with 1", ctx do
    assert {2, "", "unknown or invalid option --bogus" <> _} = run(["--bogus", ctx.tool])
    assert {2, "", "missing FILE" <> _} = run([])
    assert {2, "", "--dir takes" <> _} = run(["--dir", "::", ctx.tool])
    assert {1, "", "error: " <> _} = run(["/no/such/file.wasm"])
  end
end
