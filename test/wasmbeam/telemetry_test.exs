defmodule Wasmbeam.TelemetryTest do
  # With the real :telemetry (1.4.1, built from the vendored sources by
  # test_helper.exs). Handlers are :telemetry_test's, which send
  # `{event, ref, measurements, metadata}` to the test process. Not async:
  # some tests switch per-call spans on for the whole VM, and one makes
  # Wasmbeam believe :telemetry is absent.
  use ExUnit.Case, async: false

  @moduletag :telemetry

  alias Wasmbeam.{Error, Func, Instance, InstanceSupervisor, Module, ModuleCache, Pool}

  doctest Wasmbeam.Telemetry

  @add ~S[(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))]
  @traps ~S"""
  (module
    (func (export "div") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_s)
    (func (export "spin") (loop br 0)))
  """

  setup do
    Wasmbeam.Telemetry.call_events(false)
    on_exit(fn -> Wasmbeam.Telemetry.call_events(false) end)
    :ok
  end

  defp attach(events) do
    ref = :telemetry_test.attach_event_handlers(self(), events)
    on_exit(fn -> :telemetry.detach(ref) end)
    ref
  end

  # Drops the events already received.
  defp flush(ref) do
    receive do
      {_event, ^ref, _, _} -> flush(ref)
    after
      0 -> :ok
    end
  end

  defp span(prefix), do: for(suffix <- [:start, :stop, :exception], do: prefix ++ [suffix])

  # A module nobody compiled before in this VM, with a name section.
  defp unique_wat(name) do
    "(module $#{name} (func (export \"f\") (result i32) i32.const #{System.unique_integer([:positive])}))"
  end

  describe "compiling" do
    test "a compile is a span with the module and its name" do
      ref = attach(span([:wasmbeam, :module, :compile]))
      wat = unique_wat("tele_compile")
      {:ok, module} = Module.compile(wat)
      size = byte_size(wat)

      assert_receive {[:wasmbeam, :module, :compile, :start], ^ref, start,
                      %{byte_size: ^size} = meta}

      assert %{system_time: _, monotonic_time: _} = start
      assert meta.where == :dirty_scheduler

      assert_receive {[:wasmbeam, :module, :compile, :stop], ^ref, %{duration: duration},
                      %{byte_size: ^size} = stop}

      assert duration > 0
      assert stop.module == module
      assert stop.name == "tele_compile"
      assert stop.error == nil
      assert stop.telemetry_span_context == meta.telemetry_span_context
    end

    test "a failed compile ends with :stop and the error" do
      ref = attach(span([:wasmbeam, :module, :compile]))
      {:error, error} = Module.compile("(module (func $broken")

      assert_receive {[:wasmbeam, :module, :compile, :stop], ^ref, _,
                      %{error: ^error, module: nil}}

      refute_received {[:wasmbeam, :module, :compile, :exception], ^ref, _, _}
    end
  end

  describe "the module cache" do
    setup do
      dir =
        Path.join(System.tmp_dir!(), "wasmbeam-telemetry-#{System.unique_integer([:positive])}")

      name = :"telemetry_cache_#{System.unique_integer([:positive])}"
      start_supervised!({ModuleCache, name: name, dir: dir})
      on_exit(fn -> File.rm_rf(dir) end)
      %{cache: name, dir: dir}
    end

    test "a miss, then a memory hit, with the entry", %{cache: cache} do
      ref = attach(span([:wasmbeam, :module_cache, :fetch]))
      wat = unique_wat("tele_cache")
      entry = ModuleCache.entry(Wasmbeam.Engine.default(), wat)

      {:ok, module} = ModuleCache.compile(Wasmbeam.Engine.default(), wat, cache: cache)

      assert_receive {[:wasmbeam, :module_cache, :fetch, :start], ^ref, _,
                      %{cache: ^cache, entry: ^entry}}

      assert_receive {[:wasmbeam, :module_cache, :fetch, :stop], ^ref, %{duration: _},
                      %{cache: ^cache, entry: ^entry, result: :miss, error: nil}}

      {:ok, ^module} = ModuleCache.compile(Wasmbeam.Engine.default(), wat, cache: cache)

      assert_receive {[:wasmbeam, :module_cache, :fetch, :stop], ^ref, _,
                      %{entry: ^entry, result: :memory_hit}}
    end

    test "a disk hit, and a refused artifact", %{cache: cache, dir: dir} do
      ref =
        attach(span([:wasmbeam, :module_cache, :fetch]) ++ [[:wasmbeam, :module_cache, :refused]])

      wat = unique_wat("tele_disk")
      engine = Wasmbeam.Engine.default()
      entry = ModuleCache.entry(engine, wat)
      {:ok, _} = ModuleCache.compile(engine, wat, cache: cache)
      assert_receive {[:wasmbeam, :module_cache, :fetch, :stop], ^ref, _, %{result: :miss}}

      # Only the memory tier is emptied: the next fetch maps the file.
      :ok = stop_supervised(cache)
      start_supervised!({ModuleCache, name: cache, dir: dir})
      {:ok, _} = ModuleCache.compile(engine, wat, cache: cache)

      assert_receive {[:wasmbeam, :module_cache, :fetch, :stop], ^ref, _,
                      %{entry: ^entry, result: :disk_hit}}

      path =
        Wasmbeam.ModuleCache.Disk.artifact_path(Wasmbeam.ModuleCache.Disk.modules_dir(dir), entry)

      :ok = stop_supervised(cache)
      # A new file in its place: the one the disk hit mapped stays intact
      # (truncating a mapped file would make its pages fault).
      File.write!(path <> ".damaged", "\x7fELF")
      File.rename!(path <> ".damaged", path)
      start_supervised!({ModuleCache, name: cache, dir: dir})

      ExUnit.CaptureLog.capture_log(fn ->
        {:ok, _} = ModuleCache.compile(engine, wat, cache: cache)
      end)

      assert_receive {[:wasmbeam, :module_cache, :refused], ^ref, %{system_time: _},
                      %{cache: ^cache, entry: ^entry, path: ^path, reason: reason}}

      assert is_binary(reason)

      assert_receive {[:wasmbeam, :module_cache, :fetch, :stop], ^ref, _,
                      %{entry: ^entry, result: :miss}}
    end
  end

  describe "calls" do
    setup do
      %{instance: @traps |> Module.compile!() |> Instance.new!()}
    end

    test "traps and timeouts are events even without per-call spans", %{instance: instance} do
      ref =
        attach(
          span([:wasmbeam, :call]) ++ [[:wasmbeam, :call, :trap], [:wasmbeam, :call, :timeout]]
        )

      assert {:ok, [3]} = Instance.call(instance, "div", [7, 2])
      assert {:error, %Error{kind: :trap} = trap} = Instance.call(instance, "div", [7, 0])

      assert_receive {[:wasmbeam, :call, :trap], ^ref, %{system_time: _},
                      %{export: "div", instance: ^instance, error: ^trap} = meta}

      assert meta.module == instance.module
      assert trap.trap == :integer_division_by_zero

      assert {:error, %Error{kind: :timeout} = timeout} =
               Instance.call(instance, "spin", [], timeout: 10)

      assert_receive {[:wasmbeam, :call, :timeout], ^ref, _,
                      %{export: "spin", instance: ^instance, error: ^timeout}}

      {:ok, div} = Instance.func(instance, "div")
      assert {:error, %Error{kind: :trap}} = Func.call(div, [1, 0])
      assert_receive {[:wasmbeam, :call, :trap], ^ref, _, %{export: "div", instance: nil}}

      refute_received {[:wasmbeam, :call, :start], ^ref, _, _}
    end

    test "per-call spans, when switched on", %{instance: instance} do
      assert Wasmbeam.Telemetry.call_events(true) == :calls
      ref = attach(span([:wasmbeam, :call]) ++ [[:wasmbeam, :call, :trap]])

      assert {:ok, [3]} = Instance.call(instance, "div", [7, 2])

      assert_receive {[:wasmbeam, :call, :start], ^ref, %{system_time: _, monotonic_time: _},
                      %{export: "div", instance: ^instance} = start}

      assert_receive {[:wasmbeam, :call, :stop], ^ref, %{duration: _, monotonic_time: _},
                      %{export: "div", instance: ^instance, error: nil} = stop}

      assert start.telemetry_span_context == stop.telemetry_span_context
      assert stop.module == instance.module

      assert {:error, %Error{kind: :trap} = error} = Instance.call(instance, "div", [7, 0])
      assert_receive {[:wasmbeam, :call, :trap], ^ref, _, %{error: ^error}}
      assert_receive {[:wasmbeam, :call, :stop], ^ref, _, %{export: "div", error: ^error}}

      {:ok, div} = Instance.func(instance, "div")
      assert {:ok, [2]} = Func.call(div, [4, 2])
      assert_receive {[:wasmbeam, :call, :stop], ^ref, _, %{export: "div", instance: nil}}

      Wasmbeam.Telemetry.call_events(false)
      flush(ref)
      assert {:ok, [3]} = Instance.call(instance, "div", [7, 2])
      refute_received {[:wasmbeam, :call, :start], ^ref, _, _}
    end

    test "a call through an instance process", %{instance: instance} do
      Wasmbeam.Telemetry.call_events(true)

      ref =
        attach(
          span([:wasmbeam, :call]) ++ [[:wasmbeam, :call, :trap], [:wasmbeam, :call, :timeout]]
        )

      {:ok, pid} = Instance.start_link(module: instance.module)

      assert {:ok, [3]} = Instance.call(pid, "div", [7, 2])

      assert_receive {[:wasmbeam, :call, :stop], ^ref, _,
                      %{export: "div", instance: ^pid, error: nil}}

      assert {:error, %Error{kind: :trap}} = Instance.call(pid, "div", [7, 0])
      # From the instance process, which knows its module.
      module = instance.module
      assert_receive {[:wasmbeam, :call, :trap], ^ref, _, %{instance: ^pid, module: ^module}}

      assert {:error, %Error{kind: :timeout}} = Instance.call(pid, "spin", [], timeout: 10)
      assert_receive {[:wasmbeam, :call, :timeout], ^ref, _, %{export: "spin", instance: ^pid}}
    end
  end

  describe "instance processes" do
    test "start, stop, and a failed start" do
      ref = attach(span([:wasmbeam, :instance_process]))
      module = Module.compile!(@add)
      name = :"telemetry_instance_#{System.unique_integer([:positive])}"

      {:ok, pid} = Instance.start_link(module: module, name: name)

      assert_receive {[:wasmbeam, :instance_process, :start], ^ref, %{system_time: _},
                      %{pid: ^pid, name: ^name, module: ^module}}

      :ok = Instance.stop(pid)

      assert_receive {[:wasmbeam, :instance_process, :stop], ^ref, %{duration: _},
                      %{pid: ^pid, name: ^name}}

      needs_import = Module.compile!(~S[(module (import "env" "f" (func)))])
      assert {:error, %Error{kind: :link} = error} = Instance.start_link(module: needs_import)

      assert_receive {[:wasmbeam, :instance_process, :exception], ^ref, %{duration: _},
                      %{module: ^needs_import, kind: :error, reason: ^error}}
    end

    test "a process that exits abnormally ends its span with :exception" do
      ref = attach(span([:wasmbeam, :instance_process]))
      {:ok, pid} = Instance.start_link(module: Module.compile!(@add))
      Process.unlink(pid)
      ExUnit.CaptureLog.capture_log(fn -> :ok = Instance.stop(pid, :boom) end)

      assert_receive {[:wasmbeam, :instance_process, :exception], ^ref, _,
                      %{pid: ^pid, kind: :exit, reason: :boom}}
    end

    test "the instance supervisor's restarts and give-up" do
      ref =
        attach([
          [:wasmbeam, :instance_supervisor, :restart],
          [:wasmbeam, :instance_supervisor, :give_up]
        ])

      {:ok, sup} = InstanceSupervisor.start_link(max_restarts: 1, max_seconds: 60)
      key = {:telemetry, make_ref()}

      {:ok, first} =
        InstanceSupervisor.start_instance(key, module: Module.compile!(@add), supervisor: sup)

      Process.exit(first, :kill)

      assert_receive {[:wasmbeam, :instance_supervisor, :restart], ^ref, %{restarts: 1},
                      %{key: ^key, reason: :killed}}

      assert Wasmbeam.Test.Wat.eventually(fn ->
               InstanceSupervisor.whereis(key) not in [nil, first]
             end)

      ExUnit.CaptureLog.capture_log(fn ->
        Process.exit(InstanceSupervisor.whereis(key), :kill)

        assert_receive {[:wasmbeam, :instance_supervisor, :give_up], ^ref, %{restarts: 2},
                        %{key: ^key, reason: :killed, max_restarts: 1, max_seconds: 60}}
      end)
    end
  end

  describe "pools" do
    # A holder keeps an instance checked out until told to let go.
    defp hold(pool) do
      test = self()

      holder =
        spawn_link(fn ->
          Pool.checkout(pool, fn _instance ->
            send(test, {:holding, self()})

            receive do
              :let_go -> :ok
            end
          end)
        end)

      assert_receive {:holding, ^holder}
      holder
    end

    test "waits, overflow and overload" do
      ref =
        attach(
          span([:wasmbeam, :pool, :wait]) ++
            [[:wasmbeam, :pool, :overflow], [:wasmbeam, :pool, :overloaded]]
        )

      name = :"telemetry_pool_#{System.unique_integer([:positive])}"

      {:ok, pid} =
        Pool.start_link(
          name: name,
          module: Module.compile!(@add),
          size: 1,
          max_overflow: 1,
          max_waiting: 0
        )

      # An idle instance: no event.
      assert {:ok, [3]} = Pool.call(name, "add", [1, 2])
      refute_received {[:wasmbeam, :pool, :wait, :start], ^ref, _, _}

      first = hold(name)
      second = hold(name)

      assert_receive {[:wasmbeam, :pool, :wait, :start], ^ref, _, %{pool: ^name, pool_pid: ^pid}}
      assert_receive {[:wasmbeam, :pool, :overflow], ^ref, %{instances: 2}, %{pool: ^name}}

      assert_receive {[:wasmbeam, :pool, :wait, :stop], ^ref, %{duration: _},
                      %{pool: ^name, error: nil}}

      assert {:error, %Error{kind: :overloaded} = error} = Pool.call(name, "add", [1, 2])
      assert_receive {[:wasmbeam, :pool, :overloaded], ^ref, %{instances: 2, waiting: 0}, _}
      assert_receive {[:wasmbeam, :pool, :wait, :stop], ^ref, _, %{error: ^error}}

      for holder <- [first, second], do: send(holder, :let_go)
    end

    test "a checkout that times out" do
      ref = attach(span([:wasmbeam, :pool, :wait]))
      {:ok, pool} = Pool.start_link(module: Module.compile!(@add), size: 1, max_waiting: 1)
      holder = hold(pool)

      assert {:error, %Error{kind: :timeout}} =
               Pool.call(pool, "add", [1, 2], checkout_timeout: 10)

      assert_receive {[:wasmbeam, :pool, :wait, :stop], ^ref, _,
                      %{pool: ^pool, error: %Error{kind: :timeout}}}

      send(holder, :let_go)
    end
  end

  test "without :telemetry, nothing is emitted and everything works" do
    ref = attach(span([:wasmbeam, :module, :compile]) ++ [[:wasmbeam, :call, :trap]])
    # What Wasmbeam.Telemetry.refresh/0 records when it finds no :telemetry.
    :persistent_term.put({Wasmbeam.Telemetry, :state}, :absent)
    on_exit(&Wasmbeam.Telemetry.refresh/0)

    refute Wasmbeam.Telemetry.enabled?()
    instance = @traps |> Module.compile!() |> Instance.new!()
    assert {:error, %Error{kind: :trap}} = Instance.call(instance, "div", [1, 0])
    refute_received {_, ^ref, _, _}

    assert Wasmbeam.Telemetry.refresh() == :loaded
    assert {:error, %Error{kind: :trap}} = Instance.call(instance, "div", [1, 0])
    assert_receive {[:wasmbeam, :call, :trap], ^ref, _, _}
  end
end
