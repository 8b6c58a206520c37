defmodule Mix.Tasks.Wasmbeam.PrecompileTest do
  # Changes the current directory of the VM, so not async.
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO
  import ExUnit.CaptureLog

  alias Wasmbeam.{Engine, Instance, ModuleCache}

  @moduletag :tmp_dir

  defp wat(n), do: ~s[(module (func (export "answer") (result i32) i32.const #{n}))]

  # Runs the task and returns its output (stdout and stderr) and how it
  # ended: :ok, or the reason it exited with.
  defp run_task(argv) do
    Mix.Task.reenable("wasmbeam.precompile")
    parent = self()

    output =
      capture_io(:stderr, fn ->
        stdout =
          capture_io(fn ->
            result =
              try do
                Mix.Tasks.Wasmbeam.Precompile.run(argv)
              catch
                :exit, reason -> reason
              end

            send(parent, {:task_result, result})
          end)

        IO.write(:stderr, stdout)
      end)

    {output, receive(do: ({:task_result, result} -> result))}
  end

  defp start_cache(context, precompiled) do
    name = :"precompile_cache_#{System.unique_integer([:positive])}"
    dir = Path.join(context.tmp_dir, "cache")
    start_supervised!({ModuleCache, name: name, dir: dir, precompiled: precompiled}, id: name)
    name
  end

  test "precompiled modules load at run time without compiling", context do
    wasm_dir = Path.join([context.tmp_dir, "priv", "wasm", "nested"])
    File.mkdir_p!(wasm_dir)
    File.write!(Path.join(wasm_dir, "a.wat"), wat(1))
    File.write!(Path.join(wasm_dir, "b.wat"), wat(2))
    out = Path.join(context.tmp_dir, "wasm_cache")

    {output, :ok} = run_task(["--out", out, Path.join([context.tmp_dir, "priv/wasm/**/*.wat"])])
    assert output =~ "a.wat ->"
    assert output =~ "b.wat ->"
    assert output =~ ~r"\nwrote 2 artifacts to #{out} in \d+ ms\n\z"
    assert length(Path.wildcard(Path.join(out, "*.cwasm"))) == 2

    cache = start_cache(context, [out])
    {:ok, module} = ModuleCache.compile(Engine.default(), wat(2), cache: cache)
    {:ok, instance} = Instance.new(module)
    assert {:ok, [2]} = Instance.call(instance, "answer", [])
    assert %{precompiled_hits: 1, compiles: 0} = ModuleCache.stats(cache)
  end

  test "engine flags select the engine the artifacts are for; stale artifacts go", context do
    source = Path.join(context.tmp_dir, "m.wat")
    File.write!(source, wat(3))
    out = Path.join(context.tmp_dir, "wasm_cache")

    {_, :ok} = run_task(["--out", out, source])
    [default_artifact] = Path.wildcard(Path.join(out, "*.cwasm"))

    {output, :ok} = run_task(["--out", out, "--consume-fuel", source])
    assert output =~ "removed stale"
    refute File.exists?(default_artifact)

    fuel = Engine.new!(consume_fuel: true)

    assert [Path.join(out, ModuleCache.entry(fuel, wat(3)) <> ".cwasm")] ==
             Path.wildcard(Path.join(out, "*.cwasm"))

    cache = start_cache(context, [out])
    {:ok, _} = ModuleCache.compile(fuel, wat(3), cache: cache)
    # An engine the artifacts were not made for compiles, and says why.
    log =
      capture_log(fn ->
        {:ok, _} = ModuleCache.compile(Engine.default(), wat(3), cache: cache)
      end)

    assert log =~ "precompiled, but for an engine with other settings"

    assert %{precompiled_hits: 1, compiles: 1, precompiled_mismatches: 1} =
             ModuleCache.stats(cache)
  end

  test "a pattern that matches nothing removes no artifact", context do
    source = Path.join(context.tmp_dir, "m.wat")
    File.write!(source, wat(4))
    out = Path.join(context.tmp_dir, "wasm_cache")
    {_, :ok} = run_task(["--out", out, source])
    [artifact] = Path.wildcard(Path.join(out, "*.cwasm"))

    # A mistyped pattern alone, and beside one that matches another module.
    missing = Path.join(context.tmp_dir, "priv/wasm/*.wasm")
    {output, :ok} = run_task(["--out", out, missing])
    assert output =~ "no modules match #{missing}"
    assert output =~ "kept the existing artifacts"
    refute output =~ "removed stale"
    assert File.exists?(artifact)

    other = Path.join(context.tmp_dir, "other.wat")
    File.write!(other, wat(5))
    {output, :ok} = run_task(["--out", out, other, missing])
    refute output =~ "removed stale"
    assert File.exists?(artifact)
    assert length(Path.wildcard(Path.join(out, "*.cwasm"))) == 2

    # Every pattern matched: the artifact of a module not asked for goes.
    {output, :ok} = run_task(["--out", out, other])
    assert output =~ "removed stale"
    refute File.exists?(artifact)
  end

  test "a module that does not compile fails the task with its error", context do
    source = Path.join(context.tmp_dir, "bad.wat")
    File.write!(source, "(module")
    out = Path.join(context.tmp_dir, "out")
    {output, exit} = run_task(["--out", out, source])
    assert exit == {:shutdown, 1}
    assert output =~ "bad.wat: (parse)"
    assert output =~ ~r"wrote 0 artifacts to #{out} in \d+ ms; 1 compile failed\n\z"
  end

  test "a large module is announced before its compile; a summary ends the run", context do
    # 1 MiB of data: a module as large as those whose compile takes seconds,
    # quick to compile all the same.
    large = Path.join(context.tmp_dir, "large.wat")
    data = String.duplicate("a", 1024 * 1024)
    File.write!(large, ~s[(module (memory 17) (data (i32.const 0) "#{data}"))])
    small = Path.join(context.tmp_dir, "small.wat")
    File.write!(small, wat(6))
    out = Path.join(context.tmp_dir, "wasm_cache")

    Application.put_env(:wasmbeam, Mix.Tasks.Wasmbeam.Precompile,
      engines: [[], [consume_fuel: true]]
    )

    on_exit(fn -> Application.delete_env(:wasmbeam, Mix.Tasks.Wasmbeam.Precompile) end)

    {output, :ok} = run_task(["--out", out, large, small])

    # Per engine: the large module announced, then its artifact, then the
    # small one's; then the summary.
    expected = [
      "compiling #{large} (1.0 MiB)...",
      "#{large} -> ",
      "#{small} -> ",
      "compiling #{large} (1.0 MiB)...",
      "#{large} -> ",
      "#{small} -> ",
      "wrote 4 artifacts (2 modules x 2 engines) to #{out} in "
    ]

    lines = String.split(output, "\n", trim: true)
    assert length(lines) == length(expected), output

    for {line, start} <- Enum.zip(lines, expected),
        do: assert(String.starts_with?(line, start), output)

    refute output =~ "compiling #{small}"
  end

  test "bad options are refused with usage", context do
    {output, exit} = run_task(["--strategy", "v8", Path.join(context.tmp_dir, "x.wat")])
    assert exit == {:shutdown, 2}
    assert output =~ "strategy must be one of"
    {output, exit} = run_task(["--bogus"])
    assert exit == {:shutdown, 2}
    assert output =~ "unknown or invalid option --bogus"
  end
end
