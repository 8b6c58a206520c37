defmodule Wasmbeam.SwappedStoreTest do
  # A struct whose :store was changed (or kept from another instance) names
  # a store other than the one its instance or function lives in. Calling
  # through it used to start the run on the real store while the caller
  # drove the other: the real store stayed busy, with nobody to drive it,
  # until the caller died. Every NIF that starts a run now checks that the
  # store the caller drives is the run's own.
  use ExUnit.Case, async: true

  alias Wasmbeam.{Error, Func, Instance, Module}

  @wat ~S[(module
    (func (export "spin") (loop $l (br $l)))
    (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))]

  setup do
    {:ok,
     instance: Instance.new!(Module.compile!(@wat)), other: Instance.new!(Module.compile!(@wat))}
  end

  test "Instance.call through a swapped :store is refused; both stores stay free", ctx do
    forged = %{ctx.instance | store: ctx.other.store}

    assert {:error, %Error{kind: :argument, message: message}} =
             Instance.call(forged, "spin", [], timeout: 1_000)

    assert message =~ ":store"
    # Neither store is busy: calls that may not wait run at once.
    assert {:ok, [3]} = Instance.call(ctx.instance, "add", [1, 2], wait: false)
    assert {:ok, [5]} = Instance.call(ctx.other, "add", [2, 3], wait: false)
  end

  test "Func.call through a swapped :store is refused; both stores stay free", ctx do
    {:ok, spin} = Instance.func(ctx.instance, "spin")
    forged = %{spin | store: ctx.other.store.ref}

    assert {:error, %Error{kind: :argument}} = Func.call(forged, [], timeout: 1_000)
    assert {:ok, [3]} = Instance.call(ctx.instance, "add", [1, 2], wait: false)
    assert {:ok, [5]} = Instance.call(ctx.other, "add", [2, 3], wait: false)
  end

  test "the unswapped calls still run, and time out as before", ctx do
    assert {:error, %Error{kind: :timeout}} = Instance.call(ctx.instance, "spin", [], timeout: 20)
    {:ok, add} = Instance.func(ctx.instance, "add")
    assert {:ok, [7]} = Func.call(add, [3, 4])
  end
end
