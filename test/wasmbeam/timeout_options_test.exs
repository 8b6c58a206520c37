defmodule Wasmbeam.TimeoutOptionsTest do
  # Regression (issue #15, item 5): every timeout option is checked where
  # it is given. Erlang timers and `receive ... after` take at most
  # 2^32-1 ms; a larger timeout passed the option checks and then raised
  # `ErlangError :timeout_value` deep in a call: in the caller waiting for
  # a busy store, in a caller waiting for an instance process, in a pool
  # (which crashed), and on the WASI I/O wait path, where the raise left
  # the store marked running with a live driver, so every later call was
  # `:busy`.
  use ExUnit.Case, async: true

  alias Wasmbeam.{Error, Instance, Job, Module, Pool, Wasi}
  alias Wasmbeam.Instance.Server
  alias Wasmbeam.Wasi.Pipe

  @max 4_294_967_295
  @bad [@max + 1, 2 ** 64, -1, 1.5, "10", :never, nil]

  @wat ~S[(module
    (import "env" "hold" (func $hold))
    (func (export "one") (result i32) i32.const 1)
    (func (export "hold") call $hold))]

  @stdin_reader ~S[(module
    (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
    (memory (export "memory") 1)
    (func (export "read_stdin") (result i32)
      (i32.store (i32.const 0) (i32.const 100))
      (i32.store (i32.const 4) (i32.const 64))
      (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
      (i32.load (i32.const 8)))
    (func (export "answer") (result i32) i32.const 42))]

  setup do
    test = self()

    hold = fn _caller ->
      send(test, {:holding, self()})
      receive(do: (:release -> :ok))
    end

    %{module: Module.compile!(@wat), imports: %{"env" => %{"hold" => {:fn, [], [], hold}}}}
  end

  # An `:argument` error whose message names the option.
  defp argument?(result, option \\ "timeout")

  defp argument?({:error, %Error{kind: :argument, message: message}}, option),
    do: message =~ option

  defp argument?(_result, _option), do: false

  # Holds the store of `instance` busy in a host call until released.
  defp hold(instance) do
    holder = spawn_link(fn -> Instance.call(instance, "hold", []) end)
    assert_receive {:holding, ^holder}
    holder
  end

  test "call options: a bare instance, also while its store is busy", ctx do
    instance = Instance.new!(ctx.module, ctx.imports)

    for timeout <- @bad do
      assert argument?(Instance.call(instance, "one", [], timeout: timeout)), inspect(timeout)
    end

    holder = hold(instance)

    # Waiting for the busy store is where such a timeout used to raise.
    for timeout <- @bad do
      assert argument?(Instance.call(instance, "one", [], timeout: timeout)), inspect(timeout)
    end

    assert {:error, %Error{kind: :busy}} = Instance.call(instance, "one", [], timeout: 0)
    send(holder, :release)
    assert {:ok, [1]} = Instance.call(instance, "one", [], timeout: @max)
    assert {:ok, [1]} = Instance.call(instance, "one", [], timeout: :infinity)
  end

  test "call options: a WASI guest waiting for I/O keeps its store" do
    instance = Instance.new!(Module.compile!(@stdin_reader), %{}, wasi: [stdin: Pipe.new()])

    for timeout <- @bad do
      assert argument?(Instance.call(instance, "read_stdin", [], timeout: timeout))
    end

    assert {:ok, [42]} = Instance.call(instance, "answer", [], timeout: 1_000)
  end

  test "call options: an instance process, and await/2 and stop/3", ctx do
    server = start_supervised!({Instance, module: ctx.module, imports: ctx.imports})

    for timeout <- @bad do
      assert argument?(Instance.call(server, "one", [], timeout: timeout)), inspect(timeout)
    end

    {:ok, request} = Server.async_call(server, "one", [])

    for timeout <- @bad -- [nil] do
      assert argument?(Server.await(request, timeout)), inspect(timeout)
      assert argument?(Instance.stop(server, :normal, timeout)), inspect(timeout)
    end

    assert {:ok, [1]} = Server.await(request)
    assert {:ok, [1]} = Instance.call(server, "one", [], timeout: @max)
    assert {:ok, %{completed: 2}} = Server.info(server)
  end

  test "start options: instances, instance processes, WASI programs", ctx do
    for timeout <- @bad do
      assert argument?(Instance.new(ctx.module, ctx.imports, timeout: timeout))

      assert argument?(
               Instance.start_link(
                 module: ctx.module,
                 imports: ctx.imports,
                 instance_options: [timeout: timeout]
               )
             )

      assert argument?(Wasi.run(~S[(module (func (export "_start")))], timeout: timeout))
    end
  end

  test "pools: :checkout_timeout when starting and when checking out", ctx do
    for timeout <- @bad -- [nil] do
      assert argument?(
               Pool.start_link(
                 module: ctx.module,
                 imports: ctx.imports,
                 checkout_timeout: timeout
               ),
               "checkout_timeout"
             )
    end

    pool = start_supervised!({Pool, module: ctx.module, imports: ctx.imports, size: 1})
    holder = spawn_link(fn -> Pool.call(pool, "hold", []) end)
    assert_receive {:holding, ^holder}

    # The pool must wait for an instance: where it used to crash.
    for timeout <- @bad -- [nil] do
      assert argument?(Pool.call(pool, "one", [], checkout_timeout: timeout), "checkout_timeout")
      assert argument?(Pool.checkout(pool, & &1, checkout_timeout: timeout), "checkout_timeout")
    end

    send(holder, :release)
    assert {:ok, [1]} = Pool.call(pool, "one", [], checkout_timeout: @max)
  end

  test "jobs: :timeout and :checkout_timeout", ctx do
    pool = start_supervised!({Pool, module: ctx.module, imports: ctx.imports, size: 1})

    for timeout <- @bad do
      assert {:cancel, %Error{kind: :argument}} =
               Job.run({:pool, pool}, "one", [], timeout: timeout)

      assert {:cancel, %Error{kind: :argument}} =
               Job.run({:bytes, ~S[(module (func (export "f")))]}, "f", [], timeout: timeout)
    end

    for timeout <- @bad -- [nil] do
      assert {:cancel, %Error{kind: :argument}} =
               Job.run({:pool, pool}, "one", [], checkout_timeout: timeout)
    end

    assert {:ok, 1} = Job.run({:pool, pool}, "one", [], timeout: @max)
  end

  test "host handlers: {:process, server, timeout: ms}" do
    module = Module.compile!(~S[(module (import "env" "f" (func)))])

    for timeout <- @bad do
      spec = {:process, self(), timeout: timeout}

      assert {:error, %Error{message: message}} =
               Instance.new(module, %{"env" => %{"f" => {:fn, [], [], spec}}})

      assert message =~ "timeout"
    end

    spec = {:process, self(), timeout: @max}
    assert {:ok, _} = Instance.new(module, %{"env" => %{"f" => {:fn, [], [], spec}}})
  end
end
