defmodule Wasmbeam.WasiRunSourceTest do
  # Wasi.run/2 given a path: the module is compiled (through the module
  # cache) before the timeout starts, so `timeout:` bounds the program, not
  # the compile; options must be a keyword list. Not async: the test looks
  # in the default cache's directory, which other tests clear.
  use ExUnit.Case, async: false

  alias Wasmbeam.{Engine, Error, Module, ModuleCache, Wasi}

  @moduletag :tmp_dir

  # A WASI command with many functions: slow to compile (about a second
  # here), quick to run (a loop of a few milliseconds: long enough to meet
  # a deadline that passed during the compile). `salt` makes bytes no cache
  # has seen.
  defp big_command(salt) do
    funcs =
      for i <- 1..8000,
          into: "",
          do:
            "(func (param i64) (result i64) (i64.add (i64.mul (local.get 0) (i64.const #{i})) (i64.const #{salt})))\n"

    ~s[(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (memory (export "memory") 1)
        #{funcs}
        (func (export "_start") (local $i i32)
          (local.set $i (i32.const 5000000))
          (loop $spin (br_if $spin (local.tee $i (i32.sub (local.get $i) (i32.const 1)))))
          (call $exit (i32.const 7))))]
  end

  test "timeout: starts after the compile of a path, which goes through the module cache",
       %{tmp_dir: dir} do
    salt = System.unique_integer([:positive])

    # How long a compile of such a module takes on this machine, now.
    {compile_us, {:ok, _}} = :timer.tc(fn -> Module.compile(big_command(salt)) end)
    timeout = max(div(compile_us, 3_000), 50)

    path = Path.join(dir, "big.wat")
    bytes = big_command(salt + 1)
    File.write!(path, bytes)
    entry = ModuleCache.entry(Engine.default(), bytes)
    artifact = Path.join([ModuleCache.stats().dir, "modules", entry <> ".cwasm"])
    refute File.exists?(artifact)

    # The compile (about 3 timeouts long) is not counted against it.
    assert {:ok, %{exit_code: 7}} = Wasi.run(path, timeout: timeout)
    assert File.exists?(artifact), "the path was not compiled through Wasmbeam.ModuleCache"

    # Run again: loaded from the cache, and the timeout still holds.
    assert {:ok, %{exit_code: 7}} = Wasi.run(path, timeout: timeout)
  end

  test "cache: false compiles a path without the cache", %{tmp_dir: dir} do
    path = Path.join(dir, "exit.wat")

    bytes =
      ~s[(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
           (memory (export "memory") 1)
           (func (export "_start") (call $exit (i32.const #{rem(System.unique_integer([:positive]), 100)}))))]

    File.write!(path, bytes)

    artifact =
      Path.join([
        ModuleCache.stats().dir,
        "modules",
        ModuleCache.entry(Engine.default(), bytes) <> ".cwasm"
      ])

    assert {:ok, %{exit_code: _}} = Wasi.run(path, cache: false)
    refute File.exists?(artifact)
    assert {:error, %Error{kind: :argument}} = Wasi.run(path, cache: :maybe)
  end

  test "a map of options is a clear error, not a FunctionClauseError" do
    assert {:error, %Error{kind: :argument, message: message}} = Wasi.run("(module)", %{})
    assert message =~ "keyword list"
    assert message =~ "imports:"

    assert {:error, %Error{kind: :argument}} = Wasi.run("(module)", :nope)
  end

  test "a preopened directory that does not exist is an error that says so", %{tmp_dir: dir} do
    wat = ~S[(module (memory (export "memory") 1) (func (export "_start")))]
    missing = Path.join(dir, "job-42")

    assert {:error, %Error{kind: :argument, message: message}} =
             Wasi.run(wat, dirs: [{missing, "/out", :read_write}])

    assert message =~ "does not exist"
    File.write!(missing, "")

    assert {:error, %Error{message: message}} = Wasi.run(wat, dirs: [{missing, "/out"}])
    assert message =~ "not a directory"
  end

  test "run!/2 returns the result or raises the error" do
    wat = ~S[(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (func (export "_start") (call $exit (i32.const 3))))]

    assert %{exit_code: 3, stdout: "", stderr: ""} = Wasi.run!(wat)
    assert_raise Error, ~r/no _start export/, fn -> Wasi.run!("(module)") end
  end
end
