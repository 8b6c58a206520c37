defmodule Wasmbeam.ModuleCacheTest do
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog

  alias Wasmbeam.{Engine, Error, Instance, Module, ModuleCache}

  doctest Wasmbeam.ModuleCache

  @tag_dir :tmp_dir

  # A module whose answer depends on `n`, so every test can make modules
  # no other test compiles.
  defp wat(n),
    do: ~s[(module (func (export "answer") (result i32) i32.const #{n}))]

  defp start_cache(context, options \\ []) do
    name = :"cache_#{System.unique_integer([:positive])}"
    dir = Path.join(context.tmp_dir, "cache")
    start_supervised!({ModuleCache, [name: name, dir: dir] ++ options}, id: name)
    {name, dir}
  end

  defp artifact_files(dir), do: Path.wildcard(Path.join([dir, "modules", "*.cwasm"]))

  defp answer(module) do
    {:ok, instance} = Instance.new(module)
    Instance.call(instance, "answer", [])
  end

  # Stops the cache and starts it again on the same directory: a VM
  # restart, as far as the cache can tell (its memory tier is gone).
  defp restart(name, dir, options \\ []) do
    stop_supervised!(name)
    start_supervised!({ModuleCache, [name: name, dir: dir] ++ options}, id: name)
  end

  describe "memory tier" do
    @describetag @tag_dir
    test "the same bytes and engine give the same module without recompiling", context do
      {cache, _dir} = start_cache(context)
      engine = Engine.default()
      assert {:ok, first} = ModuleCache.compile(engine, wat(1), cache: cache)
      assert {:ok, second} = ModuleCache.compile(engine, wat(1), cache: cache)
      assert first == second
      assert %{compiles: 1, memory_hits: 1} = ModuleCache.stats(cache)
      assert {:ok, [1]} = answer(second)
    end

    test "another engine or other bytes are other entries", context do
      {cache, _dir} = start_cache(context)
      fuel = Engine.new!(consume_fuel: true)
      {:ok, a} = ModuleCache.compile(Engine.default(), wat(2), cache: cache)
      {:ok, b} = ModuleCache.compile(fuel, wat(2), cache: cache)
      {:ok, c} = ModuleCache.compile(Engine.default(), wat(3), cache: cache)
      assert a != b and a != c
      assert b.engine == fuel
      assert %{compiles: 3, memory_hits: 0, memory_entries: 3} = ModuleCache.stats(cache)
    end

    test "is bounded: the least recently used module is dropped", context do
      {cache, _dir} = start_cache(context, memory_entries: 2)
      engine = Engine.default()
      {:ok, _} = ModuleCache.compile(engine, wat(10), cache: cache)
      {:ok, _} = ModuleCache.compile(engine, wat(11), cache: cache)
      {:ok, _} = ModuleCache.compile(engine, wat(10), cache: cache)
      {:ok, _} = ModuleCache.compile(engine, wat(12), cache: cache)
      # The trim is a cast; a call to the same server orders after it.
      _ = :sys.get_state(cache)
      stats = ModuleCache.stats(cache)
      assert stats.memory_entries == 2
      assert stats.memory_evictions == 1
      # 11 was used least recently: it comes from disk now, 10 from memory.
      {:ok, _} = ModuleCache.compile(engine, wat(10), cache: cache)
      {:ok, eleven} = ModuleCache.compile(engine, wat(11), cache: cache)
      assert {:ok, [11]} = answer(eleven)
      assert %{memory_hits: 2, disk_hits: 1, compiles: 3} = ModuleCache.stats(cache)
    end
  end

  describe "disk tier" do
    @describetag @tag_dir
    test "memory_entries: 0 keeps nothing in memory: every request loads from disk", context do
      {cache, _dir} = start_cache(context, memory_entries: 0)
      {:ok, first} = ModuleCache.compile(Engine.default(), wat(22), cache: cache)
      {:ok, second} = ModuleCache.compile(Engine.default(), wat(22), cache: cache)
      assert first != second
      assert {:ok, [22]} = answer(second)

      assert %{compiles: 1, disk_hits: 1, memory_hits: 0, memory_entries: 0} =
               ModuleCache.stats(cache)
    end

    test "a restarted cache loads from disk instead of compiling", context do
      {cache, dir} = start_cache(context)
      {:ok, _} = ModuleCache.compile(Engine.default(), wat(20), cache: cache)
      assert [path] = artifact_files(dir)
      assert Bitwise.band(File.stat!(path).mode, 0o777) == 0o600
      assert Bitwise.band(File.stat!(Path.join(dir, "key")).mode, 0o777) == 0o600

      restart(cache, dir)
      assert {:ok, module} = ModuleCache.compile(Engine.default(), wat(20), cache: cache)
      assert {:ok, [20]} = answer(module)
      assert %{compiles: 0, disk_hits: 1, disk_entries: 1} = ModuleCache.stats(cache)
    end

    test "the file is named by its entry key", context do
      {cache, dir} = start_cache(context)
      {:ok, _} = ModuleCache.compile(Engine.default(), wat(21), cache: cache)
      entry = ModuleCache.entry(Engine.default(), wat(21))
      assert artifact_files(dir) == [Path.join([dir, "modules", entry <> ".cwasm"])]
    end

    test "is bounded: the least recently used artifacts are evicted", context do
      {cache, dir} = start_cache(context)
      {:ok, _} = ModuleCache.compile(Engine.default(), wat(30), cache: cache)
      [path] = artifact_files(dir)
      size = File.stat!(path).size

      # Room for two artifacts of about this size.
      restart(cache, dir, max_bytes: size * 2 + div(size, 2))
      File.touch!(path, System.os_time(:second) - 100)
      {:ok, _} = ModuleCache.compile(Engine.default(), wat(31), cache: cache)
      {:ok, _} = ModuleCache.compile(Engine.default(), wat(32), cache: cache)
      _ = :sys.get_state(cache)

      refute File.exists?(path)
      assert length(artifact_files(dir)) == 2
      assert %{disk_evictions: 1} = ModuleCache.stats(cache)
    end

    test "clear/1 empties memory and disk but keeps the key", context do
      {cache, dir} = start_cache(context)
      {:ok, _} = ModuleCache.compile(Engine.default(), wat(40), cache: cache)
      key = File.read!(Path.join(dir, "key"))
      assert :ok = ModuleCache.clear(cache)
      assert artifact_files(dir) == []
      assert %{memory_entries: 0, disk_entries: 0} = ModuleCache.stats(cache)
      assert File.read!(Path.join(dir, "key")) == key
      {:ok, _} = ModuleCache.compile(Engine.default(), wat(40), cache: cache)
      assert %{compiles: 2} = ModuleCache.stats(cache)
    end
  end

  describe "refuses files it did not write" do
    @describetag @tag_dir

    # Writes an artifact, lets `damage` change it, restarts the cache, and
    # checks that the file is reported, removed and the module recompiled.
    defp refused_after(context, n, damage) do
      {cache, dir} = start_cache(context)
      {:ok, _} = ModuleCache.compile(Engine.default(), wat(n), cache: cache)
      [path] = artifact_files(dir)
      damage.(path, dir)
      restart(cache, dir)

      log =
        capture_log(fn ->
          assert {:ok, module} = ModuleCache.compile(Engine.default(), wat(n), cache: cache)
          assert {:ok, [^n]} = answer(module)
        end)

      assert %{refused: 1, compiles: 1, disk_hits: 0, writes: 1} = ModuleCache.stats(cache)
      # Recompiled and written again, sealed with this cache's key.
      assert [^path] = artifact_files(dir)
      restart(cache, dir)
      assert {:ok, _} = ModuleCache.compile(Engine.default(), wat(n), cache: cache)
      assert %{disk_hits: 1, refused: 0} = ModuleCache.stats(cache)
      log
    end

    test "a flipped byte", context do
      log =
        refused_after(context, 50, fn path, _ ->
          bytes = File.read!(path)
          at = div(byte_size(bytes), 2)
          <<head::binary-size(at), byte, rest::binary>> = bytes
          File.write!(path, [head, Bitwise.bxor(byte, 1), rest])
        end)

      assert log =~ "refused"
      assert log =~ "keyed-hash"
    end

    test "a truncated file", context do
      log =
        refused_after(context, 51, fn path, _ ->
          bytes = File.read!(path)
          File.write!(path, binary_part(bytes, 0, byte_size(bytes) - 1))
        end)

      assert log =~ "refused"
    end

    test "a file cut to a few bytes", context do
      log = refused_after(context, 52, fn path, _ -> File.write!(path, "\x7fELF") end)
      assert log =~ "truncated"
    end

    test "a file sealed under another cache's key", context do
      log =
        refused_after(context, 53, fn _path, dir ->
          key_path = Path.join(dir, "key")
          File.write!(key_path, :binary.copy(<<7>>, 32))
        end)

      assert log =~ "keyed-hash"
    end

    test "a plain Wasmtime artifact (serialize/1 output), not sealed by the cache", context do
      log =
        refused_after(context, 54, fn path, _ ->
          {:ok, module} = Module.compile(wat(54))
          {:ok, serialized} = Module.serialize(module)
          File.write!(path, serialized)
        end)

      assert log =~ "not a Wasmbeam cache file"
    end

    test "an artifact of another engine configuration renamed to this entry", context do
      log =
        refused_after(context, 55, fn path, dir ->
          # The fuel engine's artifact, sealed with the right key, but for
          # its own entry: moving it to this entry's name breaks the seal.
          fuel = Engine.new!(consume_fuel: true)
          {:ok, other} = Module.compile(fuel, wat(55))
          other_entry = ModuleCache.entry(fuel, wat(55))
          key = File.read!(Path.join(dir, "key"))

          {:ok, _} = Wasmbeam.Native.module_cache_write(other.ref, key, other_entry, path)
        end)

      assert log =~ "keyed-hash"
    end

    test "a file that other users can write", context do
      log = refused_after(context, 56, fn path, _ -> File.chmod!(path, 0o666) end)
      assert log =~ "writable by other users"
    end

    test "a symbolic link", context do
      log =
        refused_after(context, 57, fn path, dir ->
          elsewhere = Path.join(dir, "elsewhere")
          File.rename!(path, elsewhere)
          File.ln_s!(elsewhere, path)
        end)

      assert log =~ "symbolic link"
    end

    test "a key readable by other users stops disk use, not compilation", context do
      {cache, dir} = start_cache(context)
      {:ok, _} = ModuleCache.compile(Engine.default(), wat(58), cache: cache)
      File.chmod!(Path.join(dir, "key"), 0o644)
      restart(cache, dir)

      log =
        capture_log(fn ->
          assert {:ok, module} = ModuleCache.compile(Engine.default(), wat(58), cache: cache)
          assert {:ok, [58]} = answer(module)
        end)

      assert log =~ "accessible to other users"
      assert %{compiles: 1, disk_hits: 0, write_errors: 1} = ModuleCache.stats(cache)
    end
  end

  describe "concurrency" do
    @describetag @tag_dir
    test "50 processes asking for one module at once compile it once", context do
      {cache, _dir} = start_cache(context)
      engine = Engine.default()
      bytes = wat(60)
      parent = self()

      pids =
        for _ <- 1..50 do
          spawn_link(fn ->
            receive do
              :go -> send(parent, {self(), ModuleCache.compile(engine, bytes, cache: cache)})
            end
          end)
        end

      Enum.each(pids, &send(&1, :go))
      modules = for pid <- pids, do: receive(do: ({^pid, {:ok, module}} -> module))
      assert modules |> Enum.uniq() |> length() == 1
      stats = ModuleCache.stats(cache)
      assert stats.compiles == 1
      assert stats.joined + stats.memory_hits == 49
    end

    test "a flight left behind by a killed worker does not block the entry", context do
      {cache, _dir} = start_cache(context)
      engine = Engine.default()
      dead = spawn(fn -> :ok end)
      ref = Process.monitor(dead)
      assert_receive {:DOWN, ^ref, :process, ^dead, _}
      flights = :persistent_term.get({ModuleCache, cache}).flights
      :ets.insert(flights, {{engine.ref, ModuleCache.entry(engine, wat(61))}, dead})

      assert {:ok, module} = ModuleCache.compile(engine, wat(61), cache: cache)
      assert {:ok, [61]} = answer(module)
      # Cached as usual: the stale flight was cleared, not worked around.
      assert {:ok, ^module} = ModuleCache.compile(engine, wat(61), cache: cache)
      assert %{compiles: 1, memory_hits: 1, disk_entries: 1} = ModuleCache.stats(cache)
    end

    test "a compile error reaches every caller and is not cached", context do
      {cache, _dir} = start_cache(context)

      tasks =
        for _ <- 1..10,
            do:
              Task.async(fn -> ModuleCache.compile(Engine.default(), "(module", cache: cache) end)

      for result <- Task.await_many(tasks) do
        assert {:error, %Error{kind: :parse}} = result
      end

      assert %{memory_entries: 0, disk_entries: 0, writes: 0} = ModuleCache.stats(cache)
    end
  end

  describe "precompiled tier" do
    @describetag @tag_dir
    test "artifacts from precompile/3 load without compiling, and are never removed", context do
      shipped = Path.join(context.tmp_dir, "priv_wasm_cache")
      assert {:ok, path} = ModuleCache.precompile(Engine.default(), wat(70), shipped)
      {cache, dir} = start_cache(context, precompiled: [shipped])

      assert {:ok, module} = ModuleCache.compile(Engine.default(), wat(70), cache: cache)
      assert {:ok, [70]} = answer(module)
      assert %{compiles: 0, precompiled_hits: 1, writes: 0} = ModuleCache.stats(cache)
      assert artifact_files(dir) == []

      # Replaced by rename, as a deploy must: the loaded module maps the
      # old file, and a mapped file changed in place takes the VM down.
      File.write!(path <> ".new", "damaged")
      File.rename!(path <> ".new", path)
      restart(cache, dir, precompiled: [shipped])

      log =
        capture_log(fn ->
          assert {:ok, _} = ModuleCache.compile(Engine.default(), wat(70), cache: cache)
        end)

      assert log =~ "ignoring it"
      assert File.read!(path) == "damaged"
      assert %{compiles: 1, refused: 1, precompiled_hits: 0} = ModuleCache.stats(cache)
    end
  end

  describe "errors" do
    @describetag @tag_dir
    test "bad options and arguments", context do
      {cache, _dir} = start_cache(context)

      assert {:error, %Error{kind: :argument}} =
               ModuleCache.compile(:engine, "(module)", cache: cache)

      assert {:error, %Error{kind: :argument}} =
               ModuleCache.compile(Engine.default(), 42, cache: cache)

      assert {:error, %Error{kind: :argument}} =
               ModuleCache.compile(Engine.default(), "(module)", :x)

      assert {:error, %Error{kind: :argument}} =
               ModuleCache.compile(Engine.default(), "(module)", cache: "x")

      assert {:error, %Error{kind: :argument}} = ModuleCache.stats(:not_a_cache)
      assert {:error, %Error{kind: :argument}} = ModuleCache.clear(:not_a_cache)

      assert {:error, %Error{kind: :argument}} =
               ModuleCache.compile_file(Engine.default(), "/nonexistent.wasm")
    end

    test "a cache with invalid options does not start", context do
      Process.flag(:trap_exit, true)
      dir = context.tmp_dir

      assert {:error, %Error{message: "max_bytes" <> _}} =
               ModuleCache.start_link(name: :bad1, dir: dir, max_bytes: -1)

      assert {:error, %Error{message: "dir" <> _}} = ModuleCache.start_link(name: :bad2, dir: 3)

      assert {:error, %Error{message: "precompiled" <> _}} =
               ModuleCache.start_link(name: :bad3, dir: dir, precompiled: [3])
    end

    test "an unusable directory still compiles", context do
      blocker = Path.join(context.tmp_dir, "file")
      File.write!(blocker, "")
      name = :"cache_#{System.unique_integer([:positive])}"
      start_supervised!({ModuleCache, name: name, dir: Path.join(blocker, "sub")}, id: name)

      log =
        capture_log(fn ->
          assert {:ok, module} = ModuleCache.compile(Engine.default(), wat(80), cache: name)
          assert {:ok, [80]} = answer(module)
        end)

      assert log =~ "could not write"
      assert %{compiles: 1, write_errors: 1} = ModuleCache.stats(name)
    end
  end

  describe "Module.compile/3 and Wasmbeam.load/3" do
    @describetag @tag_dir
    test "cache: a name goes through that cache; cache: false always compiles", context do
      {cache, _dir} = start_cache(context)
      {:ok, a} = Module.compile(Engine.default(), wat(90), cache: cache)
      {:ok, b} = Module.compile(Engine.default(), wat(90), cache: cache)
      {:ok, c} = Module.compile(Engine.default(), wat(90), cache: false)
      assert a == b
      assert a != c
      assert %{compiles: 1, memory_hits: 1} = ModuleCache.stats(cache)
      assert {:error, %Error{kind: :argument}} = Module.compile(Engine.default(), wat(90), :bad)
    end

    test "load/3 takes cache:", context do
      {cache, _dir} = start_cache(context)
      assert {:ok, instance} = Wasmbeam.load(wat(91), %{}, cache: cache)
      assert {:ok, [91]} = Instance.call(instance, "answer", [])
      assert {:ok, _} = Wasmbeam.load(wat(91), %{}, cache: cache)
      assert %{compiles: 1, memory_hits: 1} = ModuleCache.stats(cache)
    end
  end
end
