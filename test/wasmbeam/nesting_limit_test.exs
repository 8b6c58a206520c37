defmodule Wasmbeam.NestingLimitTest do
  # Regression (issue #15): guest -> host -> Caller.call -> guest chains
  # cost more per level the deeper they go (every poll resumes one fiber
  # per level), and 1,440 levels ignored a 2 s deadline and took 16 s to
  # unwind. Chains are capped at Wasmbeam's nesting limit (100 host calls)
  # with a clear :limit error to the handler that tried to go deeper; the
  # deadline holds at every level.
  use ExUnit.Case, async: true

  alias Wasmbeam.{Caller, Error, Instance}

  @wat ~S[(module (import "env" "h" (func $h (param i32) (result i32)))
    (func (export "down") (param i32) (result i32)
      local.get 0 i32.eqz if (result i32) i32.const 0 else local.get 0 call $h end))]

  # Each level calls back into the guest, which calls the host again until
  # the count reaches 0; a refused level reports its error to the test.
  defp instance(report) do
    h = fn caller, n ->
      case Caller.call(caller, "down", [n - 1]) do
        {:ok, [r]} ->
          r + 1

        {:error, error} ->
          send(report, {:refused, n, error})
          -1_000_000
      end
    end

    {:ok, instance} = Wasmbeam.load(@wat, %{"env" => %{"h" => {:fn, [:i32], [:i32], h}}})
    instance
  end

  test "a chain within the limit runs to the end" do
    assert {:ok, [99]} = Instance.call(instance(self()), "down", [99])
    refute_received {:refused, _, _}
  end

  test "a deeper chain is refused at the limit with a :limit error, and the instance stays usable" do
    instance = instance(self())
    assert {:ok, [result]} = Instance.call(instance, "down", [5_000])
    assert result < 0
    assert_received {:refused, n, %Error{kind: :limit, message: message}}
    assert message =~ "nested 100 host calls deep"
    # The refusal came at depth 100: 5,000 - 100 levels counted down.
    assert n == 5_000 - 99
    refute_received {:refused, _, _}
    assert {:ok, [3]} = Instance.call(instance, "down", [3])
  end

  test "the deadline holds inside a deep chain" do
    parent = self()

    h = fn caller, n ->
      if n == 50 do
        # Deep inside: the handler outlives the whole call's deadline.
        send(parent, :deep)

        receive do
        after
          1_500 -> :ok
        end
      end

      case Caller.call(caller, "down", [n - 1]) do
        {:ok, [r]} -> r + 1
        {:error, %Error{kind: kind}} -> send(parent, {:nested, kind}) && 0
      end
    end

    {:ok, instance} = Wasmbeam.load(@wat, %{"env" => %{"h" => {:fn, [:i32], [:i32], h}}})
    # The deadline leaves ample time to get 40 levels deep, even on a busy
    # machine; the handler there waits past it.
    assert {:error, %Error{kind: :timeout}} =
             Instance.call(instance, "down", [90], timeout: 1_000)

    assert_received :deep
    assert {:ok, [4]} = Instance.call(instance, "down", [4])
  end
end
