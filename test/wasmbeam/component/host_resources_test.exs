defmodule Wasmbeam.Component.HostResourcesTest do
  # Resources a component imports and Elixir implements: their state is
  # any term, made by the constructor's handler, given to method handlers,
  # and given to the drop handler when the guest (or Elixir, through a
  # handle) drops the resource.
  use ExUnit.Case, async: true

  alias Wasmbeam.{Component, Error, Native}
  alias Wasmbeam.Component.{Instance, Resource}

  @blobs "wasmbeam:test/blobs@0.1.0"
  @user "wasmbeam:test/blob-user@0.1.0"

  setup_all do
    {:ok, component: Component.compile_file!(Wasmbeam.ComponentFixtures.path!("host_resources"))}
  end

  defp imports(test_pid) do
    %{
      @blobs => %{
        "blob" => {:resource, fn _caller, state -> send(test_pid, {:blob_dropped, state}) end},
        "[constructor]blob" => fn _caller, bytes -> {:blob, bytes} end,
        "[method]blob.size" => fn _caller, {:blob, bytes} -> byte_size(bytes) end
      }
    }
  end

  setup ctx do
    {:ok, instance: Instance.new!(ctx.component, imports(self()))}
  end

  defp call(i, name, args), do: Instance.call(i, {@user, name}, args)
  defp states(i), do: Native.component_host_states(i.store.ref)

  test "the guest makes, borrows and drops a resource whose state is a term", %{instance: i} do
    assert {:ok, %Resource{} = blob} = call(i, "make-blob", [<<1, 2, 3>>])
    assert states(i) == 1
    assert call(i, "blob-size", [blob]) == {:ok, 3}
    assert call(i, "blob-size", [blob]) == {:ok, 3}
    refute_received {:blob_dropped, _}
    assert :ok = call(i, "drop-blob", [blob])
    assert_received {:blob_dropped, {:blob, <<1, 2, 3>>}}
    assert states(i) == 0
    assert {:error, %Error{kind: :argument}} = call(i, "blob-size", [blob])
  end

  test "a resource passed through the guest and dropped from Elixir", %{instance: i} do
    {:ok, blob} = call(i, "make-blob", ["abcd"])
    assert {:ok, %Resource{} = back} = call(i, "pass-blob", [blob])
    assert call(i, "blob-size", [back]) == {:ok, 4}
    assert :ok = Resource.drop(back)
    assert_received {:blob_dropped, {:blob, "abcd"}}
    assert states(i) == 0
  end

  test "a handle Elixir lets go of is dropped at the store's next call", %{instance: i} do
    me = self()

    {pid, ref} =
      spawn_monitor(fn ->
        {:ok, _blob} = Instance.call(i, {@user, "make-blob"}, ["gone"])
        send(me, :made)
      end)

    assert_receive :made
    assert_receive {:DOWN, ^ref, :process, ^pid, :normal}
    :erlang.garbage_collect()
    {:ok, other} = call(i, "make-blob", ["kept"])
    assert_received {:blob_dropped, {:blob, "gone"}}
    assert states(i) == 1
    assert call(i, "blob-size", [other]) == {:ok, 4}
  end

  test "bindings of a resource are checked", ctx do
    bad = put_in(imports(self()), [@blobs, "blob"], fn _ -> :ok end)
    assert {:error, %Error{kind: :argument, message: msg}} = Instance.new(ctx.component, bad)

    assert msg =~
             "resource #{@blobs}#blob is implemented by :resource or {:resource, drop_handler}"

    plain = put_in(imports(self()), [@blobs, "blob"], :resource)
    i = Instance.new!(ctx.component, plain)
    {:ok, blob} = call(i, "make-blob", ["x"])
    assert :ok = call(i, "drop-blob", [blob])
    assert states(i) == 0

    missing = update_in(imports(self()), [@blobs], &Map.delete(&1, "blob"))
    assert {:error, %Error{kind: :link}} = Instance.new(ctx.component, missing)
  end

  test "a method handler that raises traps the call", ctx do
    imports = put_in(imports(self()), [@blobs, "[method]blob.size"], fn _, _ -> raise "no" end)
    i = Instance.new!(ctx.component, imports)
    {:ok, blob} = call(i, "make-blob", ["x"])
    assert {:error, %Error{kind: :trap, message: msg}} = call(i, "blob-size", [blob])
    assert msg =~ "#{@blobs}#[method]blob.size"
  end
end
