defmodule Wasmbeam.KilledCallerCleanupTest do
  # Regression (native review 2026-12, item 6 of the review, item 5 of the
  # issue): when the process driving a call dies, the store's monitor
  # cancels the call. That cleanup must not run for long on a normal
  # scheduler: with the driver parked 400 host calls deep, it used to poll
  # and sleep there for about 670 ms. Chains now stop at 100 pending host
  # calls (`MAX_NESTED_HOST_CALLS`), so the test parks the driver 99 deep,
  # the deepest a chain can go.
  #
  # Not async: it holds the VM's single system monitor and counts
  # `long_schedule` reports, which other tests could cause.
  use ExUnit.Case, async: false

  alias Wasmbeam.{Caller, Instance, Module}

  @depth 99

  # `rec(n)` calls the host function `env.h(n)`, whose handler calls
  # `rec(n - 1)` back through its caller until n is 0.
  @wat ~S[(module
    (import "env" "h" (func $h (param i32) (result i32)))
    (func (export "rec") (param i32) (result i32) local.get 0 call $h)
    (func (export "nop")))]

  test "killing a driver parked 99 host calls deep does not stall a scheduler" do
    test = self()

    handler = fn
      _caller, 0 ->
        send(test, {:innermost, self()})

        receive do
          :never -> 0
        end

      caller, n ->
        {:ok, [result]} = Caller.call(caller, "rec", [n - 1])
        result
    end

    imports = %{"env" => %{"h" => {:fn, [:i32], [:i32], handler}}}
    instance = Instance.new!(Module.compile!(@wat), imports)

    {driver, driver_ref} = spawn_monitor(fn -> Instance.call(instance, "rec", [@depth]) end)
    assert_receive {:innermost, ^driver}, 10_000

    previous = :erlang.system_monitor()

    try do
      :erlang.system_monitor(self(), [{:long_schedule, 100}])

      Process.exit(driver, :kill)
      assert_receive {:DOWN, ^driver_ref, :process, ^driver, :killed}, 5_000

      # The store is usable again: this call waits for the cleanup, if it
      # is still running, and then runs.
      assert {:ok, []} = Instance.call(instance, "nop", [], timeout: 5_000)

      # A long_schedule report is sent when the process is scheduled out,
      # after the cleanup: give it time to arrive. The cleanup ran in the
      # dying driver's context (its monitor's `down` callback), so that is
      # the process a stall is reported for; reports of other processes
      # (an OS hiccup on a loaded machine) are not this test's business.
      refute_receive {:monitor, ^driver, :long_schedule, _} = report,
                     500,
                     "the cleanup after the kill held a scheduler: #{inspect(report)}"
    after
      restore_system_monitor(previous)
    end
  end

  defp restore_system_monitor(:undefined), do: :erlang.system_monitor(:undefined)
  defp restore_system_monitor({pid, options}), do: :erlang.system_monitor(pid, options)
end
