defmodule Wasmbeam.Component.ResourcesTest do
  # Guest-owned resources handed to Elixir: methods, borrow and own,
  # explicit drop, drop when garbage collected, use after drop or after
  # handing over. The guest's destructor calls the host (observer.dropped),
  # so every drop is seen.
  use ExUnit.Case, async: true

  alias Wasmbeam.{Component, Error}
  alias Wasmbeam.Component.{Instance, Resource}

  @counters "wasmbeam:test/counters@0.1.0"
  @observer "wasmbeam:test/observer@0.1.0"

  setup_all do
    {:ok, component: Component.compile_file!(Wasmbeam.ComponentFixtures.path!("resources"))}
  end

  setup ctx do
    me = self()
    imports = %{@observer => %{"dropped" => fn _caller, id -> send(me, {:dropped, id}) end}}
    {:ok, instance: Instance.new!(ctx.component, imports), imports: imports}
  end

  defp call(i, name, args), do: Instance.call(i, {@counters, name}, args)

  defp new_counter(i, id, start) do
    assert {:ok, %Resource{} = c} = call(i, "[constructor]counter", [id, start])
    c
  end

  test "a resource's constructor, methods and static functions", %{instance: i} do
    c = new_counter(i, 1, 10)
    assert :ok = call(i, "[method]counter.increment", [c])
    assert call(i, "[method]counter.get", [c]) == {:ok, 11}
    assert call(i, "[method]counter.id", [c]) == {:ok, 1}
    assert {:ok, %Resource{} = d} = call(i, "[static]counter.with-start", [2, 5])
    assert call(i, "[method]counter.get", [d]) == {:ok, 5}
    assert call(i, "live-count", []) == {:ok, 2}
    assert inspect(c) == "#Wasmbeam.Component.Resource<>"
  end

  test "borrow keeps it, own hands it over for good", %{instance: i} do
    c = new_counter(i, 3, 7)
    assert call(i, "peek", [c]) == {:ok, 7}
    assert call(i, "peek", [c]) == {:ok, 7}
    refute_received {:dropped, _}
    assert call(i, "consume", [c]) == {:ok, 7}
    assert_received {:dropped, 3}

    assert {:error, %Error{kind: :argument, message: msg}} = call(i, "peek", [c])
    assert msg =~ "argument 1 (c): the resource was handed to the guest by an earlier call"
    assert {:error, %Error{kind: :argument}} = Resource.drop(c)
    assert call(i, "live-count", []) == {:ok, 0}
  end

  test "an explicit drop runs the guest's destructor; the handle is then dead", %{instance: i} do
    c = new_counter(i, 4, 0)
    assert :ok = Resource.drop(c)
    assert_received {:dropped, 4}
    assert call(i, "live-count", []) == {:ok, 0}
    assert {:error, %Error{kind: :argument, message: msg}} = call(i, "peek", [c])
    assert msg =~ "the resource was dropped"
    assert {:error, %Error{kind: :argument}} = Resource.drop(c)
    assert_raise Error, fn -> Resource.drop!(c) end
  end

  test "a handle that is garbage collected is dropped at the store's next call", %{instance: i} do
    me = self()

    {pid, ref} =
      spawn_monitor(fn ->
        {:ok, _c} = Instance.call(i, {@counters, "[constructor]counter"}, [5, 0])
        send(me, :made)
      end)

    assert_receive :made
    assert_receive {:DOWN, ^ref, :process, ^pid, :normal}
    # The process that held the only reference is gone; the next call on
    # the store runs the destructor first (its host call comes here).
    :erlang.garbage_collect()
    assert call(i, "live-count", []) == {:ok, 0}
    assert_received {:dropped, 5}
  end

  test "a handle works only with its own store and resource type", ctx do
    i = ctx.instance
    c = new_counter(i, 6, 0)
    other = Instance.new!(ctx.component, ctx.imports)
    assert {:error, %Error{kind: :argument, message: msg}} = call(other, "peek", [c])
    assert msg =~ "belongs to another store"
    assert {:error, %Error{kind: :type}} = call(i, "peek", [make_ref()])

    assert {:error, %Error{kind: :type}} =
             call(i, "peek", [%Resource{ref: make_ref(), store: nil}])

    assert call(i, "peek", [c]) == {:ok, 0}
  end
end
