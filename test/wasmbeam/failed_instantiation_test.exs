defmodule Wasmbeam.FailedInstantiationTest do
  # Regression (native review 2026-12, item 3 and E4): a failed
  # `Instance.new(..., store: s)` must not leave in `s` what can be avoided.
  #
  # Decisions tested here: registering an equal handler term again in the
  # same store reuses its registration, and the host functions of one
  # import are made once per store; a link failure (an import of the
  # wrong type) creates nothing in the store. Wasmtime keeps an instance
  # whose start function trapped in its store (and, with the pooling
  # allocator, its slot), so that case is not expected to free a slot.
  use ExUnit.Case, async: true

  alias Wasmbeam.{Engine, Error, Instance, Module, Native, Store}

  # The handler of every failing attempt: the same term each time.
  @handler {:fn, [], [], &__MODULE__.ignore/1}

  @doc false
  def ignore(_caller), do: :ok

  # Instantiates a probe into `store`; returns a function that answers how
  # many handlers the store's registry holds, read from inside a host call
  # (`Native.host_handlers/2` answers for the registry of the pending call).
  defp registry_probe(store) do
    wat = ~S[(module (import "env" "probe" (func $probe (result i32)))
      (func (export "count") (result i32) call $probe))]

    probe = fn caller ->
      {:ok, handlers} = Native.host_handlers(caller.store, caller.id)
      tuple_size(handlers)
    end

    instance =
      Instance.new!(Module.compile!(wat), %{"env" => %{"probe" => {:fn, [], [:i32], probe}}},
        store: store
      )

    fn ->
      {:ok, [count]} = Instance.call(instance, "count", [])
      count
    end
  end

  test "failed start functions do not grow the store's handler registry" do
    store = Store.new!()
    count = registry_probe(store)

    failing = Module.compile!(~S[(module (import "env" "h" (func $h))
        (func $start unreachable) (start $start))])

    imports = %{"env" => %{"h" => @handler}}

    assert {:error, %Error{kind: :trap}} = Instance.new(failing, imports, store: store)
    after_one = count.()

    for _ <- 2..200 do
      assert {:error, %Error{kind: :trap}} = Instance.new(failing, imports, store: store)
    end

    after_200 = count.()

    assert after_200 == after_one,
           "200 failed instantiations left #{after_200} handler registrations " <>
             "(#{after_one} after the first)"
  end

  test "a link failure after a host-function import creates nothing in the store" do
    store = Store.new!()
    count = registry_probe(store)
    before = count.()

    # The host function and the memory are fine; the global has the wrong
    # type, which only instantiation finds out.
    module = Module.compile!(~S[(module (import "env" "h" (func $h))
        (import "env" "m" (memory 1))
        (import "env" "g" (global i32)))])

    imports = %{"env" => %{"h" => @handler, "m" => {:memory, 1}, "g" => {:global, :i64, 1}}}

    for _ <- 1..20 do
      assert {:error, %Error{kind: :link}} = Instance.new(module, imports, store: store)
    end

    after_failures = count.()

    assert after_failures == before,
           "20 link failures grew the handler registry from #{before} to #{after_failures}"
  end

  test "link failures into one store do not use up the slots of a pooling engine" do
    engine =
      Engine.new!(
        pooling: [total_instances: 2, total_memories: 2, total_tables: 2, total_stacks: 2]
      )

    store = Store.new!(engine)

    module = Module.compile!(engine, ~S[(module (import "env" "h" (func $h))
        (import "env" "m" (memory 1))
        (import "env" "g" (global i32))
        (memory 1))])

    imports = %{"env" => %{"h" => @handler, "m" => {:memory, 1}, "g" => {:global, :i64, 1}}}

    for _ <- 1..6 do
      assert {:error, %Error{kind: :link}} = Instance.new(module, imports, store: store)
    end

    # `store` is still alive: an unrelated store on the engine gets a slot.
    fresh = Module.compile!(engine, ~S[(module (memory 1) (func (export "f")))])
    assert {:ok, instance} = Instance.new(fresh)
    assert {:ok, []} = Instance.call(instance, "f", [])
    assert %Store{} = store
  end
end
