defmodule Wasmbeam.LinkedModuleTest do
  use ExUnit.Case, async: true

  alias Wasmbeam.{Engine, Error, Instance, LinkedModule, Module, Store, Wasi}
  alias Wasmbeam.Test.WasiFixtures

  @counter ~S[(module
    (import "env" "step" (func $step (result i32)))
    (memory (export "memory") 1)
    (func (export "bump") (result i32)
      (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (call $step)))
      (i32.load (i32.const 0))))]

  defp step(n), do: %{"env" => %{"step" => {:fn, [], [:i32], fn _caller -> n end}}}

  test "instances of one linked module share its imports but not their state" do
    linked = LinkedModule.new!(Module.compile!(@counter), step(5))
    a = Instance.new!(linked)
    b = Instance.new!(linked)

    assert {:ok, [5]} = Instance.call(a, "bump", [])
    assert {:ok, [10]} = Instance.call(a, "bump", [])
    assert {:ok, [5]} = Instance.call(b, "bump", [])
  end

  test "host functions run in the calling process, or in a handler process" do
    me = self()

    local = fn caller ->
      send(me, {:ran_in, self(), caller.__struct__})
      1
    end

    instance = Instance.new!(LinkedModule.new!(Module.compile!(@counter), step_fn(local)))
    assert {:ok, [1]} = Instance.call(instance, "bump", [])
    assert_received {:ran_in, ^me, Wasmbeam.Caller}

    server =
      spawn_link(fn ->
        receive do
          {:"$gen_call", from, {:wasmbeam_host_call, "env.step", _caller, []}} ->
            GenServer.reply(from, [7])
        end
      end)

    linked = LinkedModule.new!(Module.compile!(@counter), step_fn({:process, server}))
    assert {:ok, [7]} = Instance.call(Instance.new!(linked), "bump", [])
  end

  defp step_fn(handler), do: %{"env" => %{"step" => {:fn, [], [:i32], handler}}}

  test "a failing handler traps the call, naming the import; the instance stays usable" do
    linked =
      LinkedModule.new!(
        Module.compile!(@counter),
        step_fn(fn _ -> raise "boom" end)
      )

    instance = Instance.new!(linked)
    assert {:error, %Error{kind: :trap, message: message}} = Instance.call(instance, "bump", [])
    assert message =~ "env.step"
    assert message =~ "boom"
  end

  test "only imports that belong to no store can be linked" do
    module = Module.compile!(~S[(module (import "env" "g" (global i32)))])

    assert {:error, %Error{kind: :link, message: message}} =
             LinkedModule.new(module, %{"env" => %{"g" => {:global, :i32, 1}}})

    assert message =~ "Wasmbeam.Instance.new/3"

    assert {:error, %Error{kind: :link, message: missing}} = LinkedModule.new(module, %{})
    assert missing =~ "missing import"
  end

  test "bad arguments are errors" do
    linked = LinkedModule.new!(Module.compile!(@counter), step(1))

    assert {:error, %Error{kind: :argument}} = Instance.new(linked, step(2))
    assert {:error, %Error{kind: :argument}} = LinkedModule.new(:nope)

    assert {:error, %Error{kind: :argument}} =
             LinkedModule.new(Module.compile!("(module)"), %{}, bogus: 1)

    assert {:error, %Error{kind: :argument}} = Instance.new(:nope)
  end

  test "a store of another engine is refused; store limits apply" do
    linked = LinkedModule.new!(Module.compile!(@counter), step(1))
    other = Store.new!(Engine.new!())

    assert {:error, %Error{kind: :link}} = Instance.new(linked, %{}, store: other)
    assert {:error, %Error{kind: :limit}} = Instance.new(linked, %{}, memory_size: 1024)
  end

  describe "WASI" do
    setup do
      tool = Module.compile_file!(WasiFixtures.path!("wasi_tool"))
      {:ok, linked: LinkedModule.new!(tool, %{}, wasi: true)}
    end

    test "each run gets its own context", %{linked: linked} do
      assert {:ok, %{stdout: "one"}} = Wasi.run(linked, args: ["echo"], stdin: "one")
      assert {:ok, %{stdout: "two"}} = Wasi.run(linked, args: ["echo"], stdin: "two")
      assert {:ok, %{exit_code: 3}} = Wasi.run(linked, args: ["exit", "3"])
    end

    test "an instance of a WASI link needs WASI options", %{linked: linked} do
      assert {:error, %Error{kind: :link, message: message}} = Instance.new(linked)
      assert message =~ "wasi"
    end

    test "a single WASI function can be overridden in the link" do
      random = fn caller, ptr, len ->
        :ok = Wasmbeam.Caller.write(caller, ptr, :binary.copy(<<0x11>>, len))
        0
      end

      imports = %{
        "wasi_snapshot_preview1" => %{"random_get" => {:fn, [:i32, :i32], [:i32], random}}
      }

      tool = Module.compile_file!(WasiFixtures.path!("wasi_tool"))
      linked = LinkedModule.new!(tool, imports, wasi: true)
      assert {:ok, %{stdout: "111111\n"}} = Wasi.run(linked, args: ["random", "3"])
      assert {:ok, %{stdout: "main.wasm\nargs\n"}} = Wasi.run(linked, args: ["args"])
    end

    test "a link without WASI cannot run a WASI program" do
      assert {:error, %Error{kind: :argument}} =
               Wasi.run(LinkedModule.new!(Module.compile!("(module)")))
    end
  end
end
