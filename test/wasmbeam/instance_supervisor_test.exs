defmodule Wasmbeam.InstanceSupervisorTest do
  # Uses the application's supervisor and registry: keys are unique refs.
  use ExUnit.Case, async: true

  alias Wasmbeam.{Error, Instance, InstanceSupervisor, Module}

  doctest Wasmbeam.InstanceSupervisor

  @wat ~S"""
  (module
    (global $n (mut i32) (i32.const 0))
    (func (export "next") (result i32)
      global.get $n i32.const 1 i32.add global.set $n global.get $n))
  """

  setup do
    %{module: Module.compile!(@wat), key: {:test, make_ref()}}
  end

  test "starts an instance on demand, registered by any term", %{module: module, key: key} do
    {:ok, pid} = InstanceSupervisor.start_instance(key, module: module)
    assert InstanceSupervisor.whereis(key) == pid
    assert Instance.call(InstanceSupervisor.via(key), "next", []) == {:ok, [1]}

    assert {:error, {:already_started, ^pid}} =
             InstanceSupervisor.start_instance(key, module: module)

    assert InstanceSupervisor.stop_instance(key) == :ok
  end

  test "a crashed instance is restarted fresh under the same key", %{module: module, key: key} do
    {:ok, pid} = InstanceSupervisor.start_instance(key, module: module)
    assert Instance.call(InstanceSupervisor.via(key), "next", []) == {:ok, [1]}

    Process.exit(pid, :kill)

    assert Wasmbeam.Test.Wat.eventually(fn ->
             new = InstanceSupervisor.whereis(key)
             new != nil and new != pid
           end)

    assert Instance.call(InstanceSupervisor.via(key), "next", []) == {:ok, [1]}
    InstanceSupervisor.stop_instance(key)
  end

  test "a stopped instance stays stopped", %{module: module, key: key} do
    {:ok, pid} = InstanceSupervisor.start_instance(key, module: module)
    ref = Process.monitor(pid)
    assert InstanceSupervisor.stop_instance(key) == :ok
    assert_receive {:DOWN, ^ref, :process, ^pid, _}
    # The registry forgets a dead process asynchronously.
    assert Wasmbeam.Test.Wat.eventually(fn -> InstanceSupervisor.whereis(key) == nil end)
    assert {:error, %Error{kind: :down}} = Instance.call(InstanceSupervisor.via(key), "next", [])
    assert {:error, %Error{kind: :down}} = InstanceSupervisor.stop_instance(key)
  end

  test "a normal stop through Instance.stop/1 is not restarted", %{module: module, key: key} do
    {:ok, pid} = InstanceSupervisor.start_instance(key, module: module)
    assert Instance.stop(InstanceSupervisor.via(key)) == :ok
    assert Wasmbeam.Test.Wat.eventually(fn -> InstanceSupervisor.whereis(key) == nil end)
    refute Process.alive?(pid)
  end

  test "start errors come back as errors", %{key: key} do
    assert {:error, %Error{kind: :argument}} = InstanceSupervisor.start_instance(key, [])
    assert {:error, %Error{kind: :argument}} = InstanceSupervisor.start_instance(key, :bad)

    missing = Module.compile!(~S[(module (import "env" "f" (func)))])
    assert {:error, %Error{kind: :link}} = InstanceSupervisor.start_instance(key, module: missing)
    assert InstanceSupervisor.whereis(key) == nil
  end

  test "an application can run its own instance supervisor", %{module: module, key: key} do
    sup = start_supervised!({InstanceSupervisor, name: __MODULE__.Sup})
    {:ok, pid} = InstanceSupervisor.start_instance(key, module: module, supervisor: sup)
    # One child per instance: the small process that supervises it.
    assert %{active: 1} = DynamicSupervisor.count_children(sup)
    assert InstanceSupervisor.whereis(key) == pid
    assert InstanceSupervisor.stop_instance(key, sup) == :ok
    assert %{active: 0} = DynamicSupervisor.count_children(sup)
  end
end
