defmodule Wasmbeam.ModuleCacheSpecialFilesTest do
  # Regression (issue #15, item 7): the module cache looks at what is at
  # an entry's path (`File.lstat/1`) before it opens it. Anything but a
  # regular file is refused without being opened and, in the cache's own
  # directory, removed; the module is compiled and written again. Before, a
  # directory at the path was refused on every compile but never removed
  # (so nothing could be written there either), and a FIFO blocked that
  # module's compile for ever (the native open waited for a writer).
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog

  alias Wasmbeam.{Engine, Instance, ModuleCache}

  @moduletag :tmp_dir

  defp wat(n), do: ~s[(module (func (export "answer") (result i32) i32.const #{n}))]

  defp start_cache(context, options \\ []) do
    name = :"special_cache_#{System.unique_integer([:positive])}"
    dir = Path.join(context.tmp_dir, "cache")
    start_supervised!({ModuleCache, [name: name, dir: dir] ++ options}, id: name)
    # The cache makes its directory (and key) on first use.
    {:ok, _} = ModuleCache.compile(Engine.default(), wat(0), cache: name)
    {name, dir}
  end

  defp artifact_path(dir, n),
    do: Path.join([dir, "modules", ModuleCache.entry(Engine.default(), wat(n)) <> ".cwasm"])

  defp mkfifo!(path) do
    assert {_, 0} = System.cmd("mkfifo", [path])
    assert {:ok, %File.Stat{type: :other}} = File.lstat(path)
  end

  # Compiles in a task that must answer within 10 s; a compile stuck
  # opening a FIFO is released (by a writer that closes at once) before
  # the test fails.
  defp compile_promptly(cache, n, fifo \\ nil) do
    task = Task.async(fn -> ModuleCache.compile(Engine.default(), wat(n), cache: cache) end)

    case Task.yield(task, 10_000) do
      {:ok, result} ->
        result

      nil ->
        if fifo, do: File.write(fifo, "")
        Task.shutdown(task, :brutal_kill)
        flunk("the compile did not return: it opened what is at the entry's path")
    end
  end

  defp answer(module), do: Instance.call(Instance.new!(module), "answer", [])

  test "a directory at an entry's path is removed, and the module compiled and written",
       context do
    {cache, dir} = start_cache(context)
    path = artifact_path(dir, 1)
    File.mkdir_p!(Path.join(path, "inside"))

    log =
      capture_log(fn ->
        assert {:ok, module} = compile_promptly(cache, 1)
        assert {:ok, [1]} = answer(module)
      end)

    assert log =~ "not a regular file"
    assert %{refused: 1, compiles: 2, writes: 2, write_errors: 0} = ModuleCache.stats(cache)
    assert {:ok, %File.Stat{type: :regular}} = File.lstat(path)
  end

  test "a FIFO at an entry's path is never opened: removed, and the module compiled",
       context do
    {cache, dir} = start_cache(context)
    path = artifact_path(dir, 2)
    mkfifo!(path)

    log =
      capture_log(fn ->
        assert {:ok, module} = compile_promptly(cache, 2, path)
        assert {:ok, [2]} = answer(module)
      end)

    assert log =~ "not a regular file"
    assert %{refused: 1, writes: 2, write_errors: 0} = ModuleCache.stats(cache)
    assert {:ok, %File.Stat{type: :regular}} = File.lstat(path)
  end

  test "a FIFO in a precompiled directory is skipped, never opened, and left alone",
       context do
    shipped = Path.join(context.tmp_dir, "shipped")
    File.mkdir_p!(shipped)
    fifo = Path.join(shipped, ModuleCache.entry(Engine.default(), wat(3)) <> ".cwasm")
    mkfifo!(fifo)
    {cache, _dir} = start_cache(context, precompiled: [shipped])

    log =
      capture_log(fn ->
        assert {:ok, module} = compile_promptly(cache, 3, fifo)
        assert {:ok, [3]} = answer(module)
      end)

    assert log =~ "not a regular file"
    assert %{refused: 1, precompiled_hits: 0} = ModuleCache.stats(cache)
    assert {:ok, %File.Stat{type: :other}} = File.lstat(fifo)
  end
end
