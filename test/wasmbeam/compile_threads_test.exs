defmodule Wasmbeam.CompileThreadsTest do
  # Regression (issue #15): compiling held a dirty CPU scheduler for the
  # whole compile; while large modules compiled, `Module.compile("(module)")`
  # (and everything else needing a dirty scheduler) waited seconds. Large
  # modules now compile on Wasmbeam's own threads and the result comes by
  # message; small ones stay inline.
  use ExUnit.Case, async: false

  alias Wasmbeam.{Instance, Module}

  # A module of `n` functions with long bodies: well over the inline limit
  # (128 KiB) and slow to compile.
  defp big_wat(n) do
    body =
      String.duplicate("local.get 0 i32.const 7 i32.mul i32.const 3 i32.add local.set 0 ", 60)

    funcs =
      for i <- 1..n do
        ~s[(func (export "f#{i}") (param i32) (result i32) #{body} local.get 0)]
      end

    "(module " <> Enum.join(funcs, "\n") <> ")"
  end

  describe "debug logging" do
    import ExUnit.CaptureLog

    # test_helper.exs raises Wasmbeam.Module's level: lower it for a moment.
    defp debug_log(fun) do
      Logger.put_module_level(Wasmbeam.Module, :debug)

      try do
        capture_log([level: :debug, metadata: [:request_id]], fun)
      after
        Logger.put_module_level(Wasmbeam.Module, :info)
      end
    end

    test "a compile on the compile threads is logged with its size and time; a small one is not" do
      wat = big_wat(400)
      log = debug_log(fn -> assert {:ok, _} = Module.compile(wat) end)
      size = "#{Float.round(byte_size(wat) / (1024 * 1024), 1)} MiB"
      assert log =~ "[debug] Wasmbeam.Module: compiling #{size} on a compile thread"
      assert log =~ ~r"\[debug\] Wasmbeam.Module: compiled #{size} in \d+ ms"

      named = ~s[(module $big ] <> String.trim_leading(wat, "(module ")
      log = debug_log(fn -> assert {:ok, _} = Module.compile(named) end)
      assert log =~ ~r"compiled \"big\" \(#{size}\) in \d+ ms"

      log = debug_log(fn -> assert {:error, _} = Module.compile(wat <> " (oops)") end)
      assert log =~ ~r"compiling #{size} failed after \d+ ms: "

      assert debug_log(fn -> assert {:ok, _} = Module.compile("(module)") end) == ""
    end

    test "a compile through the module cache is logged with the caller's metadata" do
      Logger.metadata(request_id: "req-17")
      wat = big_wat(402)

      log =
        debug_log(fn ->
          assert {:ok, _} = Wasmbeam.ModuleCache.compile(Wasmbeam.Engine.default(), wat)
        end)

      assert log =~ ~r"request_id=req-17 \[debug\] Wasmbeam.Module: compiled [^\n]+ in \d+ ms"
    end

    test "the Mix tasks keep those lines off their output, and put the level back" do
      path = Wasmbeam.Test.Tmp.path("wasmbeam-big", ".wat")
      File.write!(path, big_wat(401))
      on_exit(fn -> File.rm(path) end)

      log =
        debug_log(fn ->
          ExUnit.CaptureIO.capture_io(fn ->
            Mix.Tasks.Wasmbeam.Run.run(["--invoke", "f1", path, "1"])
          end)

          assert Logger.get_module_level(Wasmbeam.Module) == [{Wasmbeam.Module, :debug}]
        end)

      refute log =~ "Wasmbeam.Module"
    end
  end

  test "a large module compiles off the dirty schedulers and works" do
    wat = big_wat(400)
    assert byte_size(wat) > 128 * 1024
    assert {:ok, module} = Module.compile(wat)
    instance = Instance.new!(module)
    assert {:ok, [_]} = Instance.call(instance, "f400", [1])
  end

  test "while large modules compile, small compiles do not wait for them" do
    wat = big_wat(3_000)
    parent = self()
    dirty = :erlang.system_info(:dirty_cpu_schedulers)

    # More large compiles than there are dirty CPU schedulers: on them,
    # they would take every one.
    for n <- 1..(dirty + 1) do
      spawn_link(fn ->
        send(parent, {:started, n})
        send(parent, {:big, n, Module.compile(wat)})
      end)
    end

    for n <- 1..(dirty + 1), do: assert_receive({:started, ^n})
    # Their compiles take seconds: none is done after a moment.
    refute_receive {:big, _, _}, 100
    assert {:ok, _} = Module.compile("(module)")
    assert :ok = Module.validate("(module (func))")
    # The small ones came back while the large ones still compile.
    refute_received {:big, _, _}

    for n <- 1..(dirty + 1) do
      assert_receive {:big, ^n, {:ok, %Module{}}}, 120_000
    end
  end

  test "a compile error from the compile threads is an :error tuple" do
    bad =
      big_wat(400)
      |> String.replace(~s[(export "f7")], ~s[(export "f7") (result i64)], global: false)

    assert {:error, %Wasmbeam.Error{}} = Module.compile(bad)
  end
end
