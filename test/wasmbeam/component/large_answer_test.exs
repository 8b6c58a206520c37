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

  # Whether the test process answered a host call through the dirty NIF.
  defp traced_dirty_answers(fun) do
    :erlang.trace_pattern({Wasmbeam.Native, :store_answer_dirty, 3}, true, [:local])
    :erlang.trace(self(), true, [:call])

    try do
      result = fun.()
      {result, dirty_calls(0)}
    after
      :erlang.trace(self(), false, [:call])
      :erlang.trace_pattern({Wasmbeam.Native, :store_answer_dirty, 3}, false, [:local])
    end
  end

  defp dirty_calls(n) do
    receive do
      {:trace, _, :call, {Wasmbeam.Native, :store_answer_dirty, _}} -> dirty_calls(n + 1)
    after
      0 -> n
    end
  end

  test "a large answer goes through the dirty scheduler and arrives whole", ctx do
    big = for i <- 1..20_000, do: "s#{i}"
    instance = instance(ctx, big)

    assert {{:ok, ^big}, 1} =
             traced_dirty_answers(fn -> Instance.call(instance, {@echo, "echo-strings"}, [[]]) end)
  end

  test "a small answer stays on the normal scheduler", ctx do
    instance = instance(ctx, ["a", "b"])

    assert {{:ok, ["a", "b"]}, 0} =
             traced_dirty_answers(fn -> Instance.call(instance, {@echo, "echo-strings"}, [[]]) end)
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

    assert {{:error, %Error{kind: :trap}}, 0} =
             traced_dirty_answers(fn -> Instance.call(instance, {@echo, "echo-strings"}, [[]]) end)
  end
end
