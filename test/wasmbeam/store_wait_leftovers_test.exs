defmodule Wasmbeam.StoreWaitLeftoversTest do
  # Regression (issue #15, item 6): a call that gives up waiting for a
  # busy store leaves no `{:wasmbeam_store_idle, store_id}` message behind
  # in its caller's mailbox (a GenServer caller would see it in
  # `handle_info/2`).
  #
  # The Elixir side does not queue a call with no time to wait; a call
  # that gives up takes itself out of the store's queue
  # (`Native.store_unwait/1`), or, when the store had told it already,
  # takes that message out of its mailbox.
  use ExUnit.Case, async: true

  alias Wasmbeam.{Error, Instance, Module}

  @wat ~S[(module
    (import "env" "hold" (func $hold))
    (func (export "one") (result i32) i32.const 1)
    (func (export "hold") call $hold))]

  setup do
    test = self()

    hold = fn _caller ->
      send(test, {:holding, self()})
      receive(do: (:release -> :ok))
    end

    instance = Instance.new!(Module.compile!(@wat), %{"env" => %{"hold" => {:fn, [], [], hold}}})
    %{instance: instance}
  end

  # Keeps the store busy in a host call until released; the holder tells
  # the test when its call has returned (after the store told its waiters).
  defp hold(instance) do
    test = self()

    holder =
      spawn_link(fn ->
        result = Instance.call(instance, "hold", [])
        send(test, {:held, self(), result})
      end)

    assert_receive {:holding, ^holder}
    holder
  end

  defp release(holder) do
    send(holder, :release)
    assert_receive {:held, ^holder, {:ok, []}}
  end

  test "a call with no time to wait is not queued, so it is not told later", ctx do
    holder = hold(ctx.instance)
    assert {:error, %Error{kind: :busy}} = Instance.call(ctx.instance, "one", [], timeout: 0)
    release(holder)
    refute_received {:wasmbeam_store_idle, _}
  end

  test "a caller whose wait ended leaves nothing in its mailbox when it returns", ctx do
    holder = hold(ctx.instance)

    for timeout <- [0, 1, 20] do
      assert {:error, %Error{kind: :busy}} =
               Instance.call(ctx.instance, "one", [], timeout: timeout)

      refute_received {:wasmbeam_store_idle, _}
    end

    release(holder)
    # Its turn comes as soon as the store is free.
    assert {:ok, [1]} = Instance.call(ctx.instance, "one", [], timeout: 1_000)
  end

  test "a caller whose wait ended is not told later that the store is free", ctx do
    holder = hold(ctx.instance)

    assert {:error, %Error{kind: :busy}} = Instance.call(ctx.instance, "one", [], timeout: 20)

    # The holder's call returns after the store has told its waiters, and
    # its message to this process comes after any of theirs.
    release(holder)
    refute_received {:wasmbeam_store_idle, _}
  end
end
