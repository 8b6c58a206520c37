defmodule Wasmbeam.ExportNameBoundaryTest do
  # Regression (issue #15, item 2): an export name that is not UTF-8 is
  # refused where it is given, with an `:argument` error. Before,
  # `Wasmbeam.Instance.Server.async_call(server, <<255>>, [])` was accepted,
  # the native call raised inside the instance process, and the process
  # crashed and lost its state. An instance process must never crash on a
  # bad request, even one sent to it by hand.
  use ExUnit.Case, async: true

  alias Wasmbeam.{Caller, Error, Instance, Module}
  alias Wasmbeam.Instance.Server

  @wat ~S[(module
    (import "env" "probe" (func $probe))
    (memory (export "memory") 1)
    (global $n (mut i32) (i32.const 0))
    (func (export "next") (result i32)
      global.get $n i32.const 1 i32.add global.set $n global.get $n)
    (func (export "probe") call $probe))]

  @bad_names [<<255>>, <<"ok", 0xC3>>, <<0xED, 0xA0, 0x80>>]

  setup do
    imports = %{"env" => %{"probe" => {:fn, [], [], fn _caller -> :ok end}}}
    %{module: Module.compile!(@wat), imports: imports}
  end

  defp start!(ctx), do: start_supervised!({Instance, module: ctx.module, imports: ctx.imports})

  test "async_call/4 refuses a name that is not UTF-8, and the process keeps its state", ctx do
    server = start!(ctx)
    monitor = Process.monitor(server)
    assert {:ok, [1]} = Instance.call(server, "next", [])

    for name <- @bad_names do
      assert {:error, %Error{kind: :argument, message: message}} =
               Server.async_call(server, name, [])

      assert message =~ "UTF-8"
    end

    assert {:ok, [2]} = Instance.call(server, "next", [])
    refute_received {:DOWN, ^monitor, _, _, _}
  end

  test "Instance.call/4 refuses it, through a process or on a bare instance", ctx do
    server = start!(ctx)
    bare = Instance.new!(ctx.module, ctx.imports)

    for target <- [server, bare], name <- @bad_names do
      assert {:error, %Error{kind: :argument}} = Instance.call(target, name, [])
    end

    assert {:error, %Error{kind: :argument}} = Instance.export(bare, <<255>>)
    assert {:error, %Error{kind: :argument}} = Instance.func(bare, <<255>>)
    assert {:ok, [1]} = Instance.call(server, "next", [])
  end

  test "a malformed request sent to the process by hand is answered, not a crash", ctx do
    server = start!(ctx)
    monitor = Process.monitor(server)
    {:ok, native} = Wasmbeam.CallOptions.to_native([])

    requests = [
      {<<255>>, [], native},
      {:next, [], native},
      {"next", :not_a_list, native},
      {"next", [], %{}},
      {"next", [], %{native | timeout: -1}},
      {"next", [], %{native | wait: :maybe}},
      {"next", [], :no_options}
    ]

    for {name, args, options} <- requests do
      tag = :erlang.monitor(:process, server, alias: :demonitor)
      send(server, {:"$wasmbeam_call", self(), tag, name, args, options})
      assert_receive {^tag, {:error, %Error{kind: :argument}}}, 1_000
      Process.demonitor(tag, [:flush])
    end

    assert {:ok, [1]} = Instance.call(server, "next", [])
    refute_received {:DOWN, ^monitor, _, _, _}
  end

  test "a host function's Caller refuses such names with a clear error", ctx do
    test = self()

    probe = fn caller ->
      send(test, {:answers, [Caller.call(caller, <<255>>, []), Caller.global(caller, <<255>>)]})
      :ok
    end

    imports = %{"env" => %{"probe" => {:fn, [], [], probe}}}
    bare = Instance.new!(ctx.module, imports)
    assert {:ok, []} = Instance.call(bare, "probe", [])
    assert_received {:answers, answers}

    for answer <- answers do
      assert {:error, %Error{kind: :argument, message: message}} = answer
      assert message =~ "UTF-8"
    end
  end
end
