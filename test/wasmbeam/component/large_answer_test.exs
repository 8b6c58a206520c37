defmodule Wasmbeam.Component.LargeAnswerTest do
  # A component handler's answer is decoded within a bound on the caller's
  # normal scheduler; a larger one is declined there (nothing delivered)
  # and delivered from a dirty scheduler instead, so a handler answering
  # millions of values holds no normal scheduler while they are decoded.
  use ExUnit.Case, async: true

  alias Wasmbeam.{Component, Error}
  alias Wasmbeam.Component.Instance

  @echo "wasmbeam:test/echo@0.1.0"

  setup_all do
    {:ok, component: Component.compile_file!(Wasmbeam.ComponentFixtures.path!("types"))}
  end

  # The host's echo-strings answers `answer` (whatever it was given).
  defp instance(ctx, answer) do
    imports =
      Wasmbeam.ComponentFixtures.types_imports(self())
      |> put_in(["wasmbeam:test/host@0.1.0", "echo-strings"], fn _caller, _x -> answer end)

    Instance.new!(ctx.component, imports)
  end

  test "a large answer arrives whole", ctx do
    big = for i <- 1..20_000, do: "s#{i}"
    instance = instance(ctx, big)
    assert {:ok, ^big} = Instance.call(instance, {@echo, "echo-strings"}, [[]])
  end

  # The protocol underneath, driven by hand: the normal-scheduler NIF
  # declines the large answer without delivering it (the host call still
  # waits for it), the dirty one delivers it; a small one is taken at once.
  test "store_answer declines a large answer, store_answer_dirty takes it", ctx do
    big = for i <- 1..20_000, do: "s#{i}"
    instance = instance(ctx, :unused)
    store = instance.store.ref
    {:ok, native} = Wasmbeam.CallOptions.to_native([])

    assert {:host_call, _registry, _index, _args, id} =
             Instance.start_call(instance.ref, store, @echo, "echo-strings", [[]], native)
             |> to_host_call(store)

    assert :dirty = Wasmbeam.Native.store_answer(store, id, {:ok, big})
    assert :dirty = Wasmbeam.Native.store_answer(store, id, {:ok, big})
    step = Wasmbeam.Native.store_answer_dirty(store, id, {:ok, big})
    assert {:ok, ^big} = run_to_end(step, store)

    assert {:host_call, _, _, _, id} =
             Instance.start_call(instance.ref, store, @echo, "echo-strings", [[]], native)
             |> to_host_call(store)

    step = Wasmbeam.Native.store_answer(store, id, {:ok, ["a", "b"]})
    assert {:ok, ["a", "b"]} = run_to_end(step, store)
  end

  # A slice may end (the epoch) before the guest reaches its host call.
  defp to_host_call(:continue, store),
    do: to_host_call(Wasmbeam.Native.store_resume(store), store)

  defp to_host_call(step, _store), do: step

  defp run_to_end(step, store) do
    case Wasmbeam.Driver.settle(step, store) do
      :continue -> run_to_end(Wasmbeam.Native.store_resume(store), store)
      done -> done
    end
  end

  test "a large wrong answer is refused with the import named, after the dirty decode", ctx do
    bad = List.duplicate("ok", 10_000) ++ [42]
    instance = instance(ctx, bad)

    assert {:error, %Error{kind: :trap, message: message}} =
             Instance.call(instance, {@echo, "echo-strings"}, [[]])

    assert message =~ "echo-strings"
  end

  test "a wrong small answer is refused on the normal scheduler, as before", ctx do
    instance = instance(ctx, [1])

    assert {:error, %Error{kind: :trap}} = Instance.call(instance, {@echo, "echo-strings"}, [[]])
  end
end
