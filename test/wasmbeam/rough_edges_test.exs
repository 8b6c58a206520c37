defmodule Wasmbeam.RoughEdgesTest do
  # Things a new user runs into (issue #17): each answers with what it
  # should, or with an error that says what to do.
  use ExUnit.Case, async: true

  alias Wasmbeam.{Engine, Error, Instance, Module, Store}

  describe "Store.new/1 with options only" do
    test "uses the default engine" do
      assert {:ok, %Store{engine: engine} = store} = Store.new(memory_size: 65_536)
      assert engine == Engine.default()

      module =
        Module.compile!(
          ~S[(module (memory (export "m") 1) (func (export "grow") (result i32) (memory.grow (i32.const 1))))]
        )

      instance = Instance.new!(module, %{}, store: store)
      # the limit holds: one page is all it may have
      assert {:ok, [-1]} = Instance.call(instance, "grow", [])

      assert %Store{} = Store.new!(memory_size: 65_536)
      assert {:ok, %Store{}} = Store.new([])
      assert {:error, %Error{kind: :argument}} = Store.new(memory_size: -1)
    end
  end
end

defmodule Wasmbeam.RoughEdgesInspectTest do
  use ExUnit.Case, async: true

  alias Wasmbeam.{Error, Instance, LinkedModule, Module}

  defp many_exports(n) do
    funcs =
      for i <- 1..n,
          into: "",
          do:
            ~s[(func (export "function_number_#{i}") (param i32 i64) (result f64) f64.const 0)\n]

    Module.compile!("(module #{funcs})")
  end

  test "Inspect of modules, instances and linked modules honours :limit" do
    module = many_exports(300)
    instance = Instance.new!(module)
    linked = LinkedModule.new!(module)

    for term <- [module, instance, linked] do
      # inspect/2's default limit is 50
      text = inspect(term)
      assert text =~ "function_number_50: "
      refute text =~ "function_number_51: "
      assert text =~ "... (250 more)"
      assert byte_size(text) < 3_000

      short = inspect(term, limit: 2)
      assert short =~ "function_number_2: func (i32, i64) -> f64, ... (298 more)>"
      refute short =~ "function_number_3"

      full = inspect(term, limit: :infinity)
      assert full =~ "function_number_300: "
      refute full =~ "more)"
    end

    assert inspect(many_exports(2)) ==
             "#Wasmbeam.Module<function_number_1: func (i32, i64) -> f64, function_number_2: func (i32, i64) -> f64>"
  end

  test "%Wasmbeam.Error{} inspects as its kind and message, and keeps its fields" do
    {:error, error} =
      Wasmbeam.load(~S[(module (func (export "boom") unreachable))])
      |> then(fn {:ok, i} -> Instance.call(i, "boom", []) end)

    text = inspect(error)
    assert text =~ ~r/^#Wasmbeam.Error<trap unreachable: .+>$/
    refute text =~ "backtrace"
    assert [_ | _] = error.backtrace
    assert inspect(error, structs: false) =~ "backtrace:"
    assert Exception.message(error) =~ "wasm backtrace"

    assert inspect({:error, Error.new(:timeout, "the call ran past its timeout")}) ==
             "{:error, #Wasmbeam.Error<timeout: the call ran past its timeout>}"

    assert inspect(%Error{kind: :validation, message: "bad", offset: 9}) ==
             "#Wasmbeam.Error<validation: bad (at byte offset 9)>"

    assert inspect(%Error{kind: :exit, message: "exit", exit_code: 3}) ==
             "#Wasmbeam.Error<exit 3: exit>"
  end
end

defmodule Wasmbeam.RoughEdgesPoolTest do
  use ExUnit.Case, async: true

  alias Wasmbeam.{Error, Module, Pool}

  @add ~S[(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))]

  test "Pool.stop/3 stops a pool, and only a pool" do
    {:ok, pool} = Pool.start_link(module: Module.compile!(@add), size: 2)
    ref = Process.monitor(pool)
    assert {:ok, [3]} = Pool.call(pool, "add", [1, 2])

    assert Pool.stop(pool) == :ok
    assert_receive {:DOWN, ^ref, :process, ^pool, :normal}
    assert {:error, %Error{kind: :down}} = Pool.call(pool, "add", [1, 2])
    assert {:error, %Error{kind: :down}} = Pool.stop(pool)
    assert {:error, %Error{kind: :down}} = Pool.stop(:no_such_pool)

    {:ok, agent} = Agent.start_link(fn -> 1 end)
    assert {:error, %Error{kind: :argument}} = Pool.stop(agent)
    assert Process.alive?(agent)
  end

  test "child_spec/1 takes :restart (and :shutdown): a :transient pool stopped normally stays stopped" do
    module = Module.compile!(@add)
    name = :"rough_edges_pool_#{System.unique_integer([:positive])}"

    spec =
      Pool.child_spec(name: name, module: module, size: 1, restart: :transient, shutdown: 1_000)

    assert %{restart: :transient, shutdown: 1_000} = spec
    refute Keyword.has_key?(hd(elem(spec.start, 2)), :restart)

    {:ok, sup} = Supervisor.start_link([spec], strategy: :one_for_one)
    first = Process.whereis(name)
    assert :ok = Pool.stop(name)
    assert [{^name, :undefined, :worker, _}] = Supervisor.which_children(sup)
    refute Process.whereis(name) == first

    permanent = :"#{name}_permanent"

    {:ok, _} =
      Supervisor.start_child(sup, Pool.child_spec(name: permanent, module: module, size: 1))

    before = Process.whereis(permanent)
    assert :ok = Pool.stop(permanent)
    # restarted by its supervisor
    assert [{_, pid, :worker, _}] =
             Supervisor.which_children(sup) |> Enum.filter(&(elem(&1, 0) == permanent))

    assert is_pid(pid) and pid != before
    assert {:ok, [5]} = Pool.call(permanent, "add", [2, 3])
  end
end

defmodule Wasmbeam.RoughEdgesNamesTest do
  use ExUnit.Case, async: true

  alias Wasmbeam.{Error, Instance, LinkedModule, Module}

  @uses_log ~S[(module (import "env" "log" (func (param i32))) (func (export "f")))]

  test "import maps with atom keys fail with a hint that names are strings" do
    module = Module.compile!(@uses_log)
    log = {:fn, [:i32], [], fn _caller, _x -> :ok end}

    assert {:error, %Error{kind: :link, message: message}} =
             Instance.new(module, %{env: %{log: log}})

    assert message =~ ~s[missing import "env" "log"]
    assert message =~ ~s[the import map has :env where the module name "env" is needed]

    assert {:error, %Error{kind: :link, message: message}} =
             Instance.new(module, %{"env" => %{log: log}})

    assert message =~ ~s[the import map has :log where the import name "log" is needed]

    # the same through a linked module, and without atoms no hint
    assert {:error, %Error{message: ^message}} = LinkedModule.new(module, %{"env" => %{log: log}})
    assert {:error, %Error{message: plain}} = Instance.new(module, %{"env" => %{}})
    refute plain =~ "atom"
    refute plain =~ "names are strings"

    assert {:ok, _} = Instance.new(module, %{"env" => %{"log" => log}})
  end

  test "imports the module does not use are ignored (documented in Wasmbeam.Imports)" do
    module = Module.compile!(@uses_log)
    log = {:fn, [:i32], [], fn _caller, _x -> :ok end}

    assert {:ok, _} =
             Instance.new(module, %{"env" => %{"log" => log, "extra" => log}, "more" => %{}})

    {:docs_v1, _, _, _, %{"en" => doc}, _, _} = Code.fetch_docs(Wasmbeam.Imports)
    assert doc =~ "Entries that the module does not import are ignored"
  end

  test "an atom export name is an :argument error that says how to write it" do
    instance =
      Instance.new!(Module.compile!(@uses_log), %{
        "env" => %{"log" => {:fn, [:i32], [], fn _, _ -> :ok end}}
      })

    for result <- [
          Instance.export(instance, :f),
          Instance.func(instance, :f),
          Instance.call(instance, :f, [])
        ] do
      assert {:error, %Error{kind: :argument, message: message}} = result
      assert message == ~s[an export name must be a string, got: :f (write "f")]
    end

    assert_raise Error, ~r/write "f"/, fn -> Instance.func!(instance, :f) end
  end
end

defmodule Wasmbeam.RoughEdgesDefaultTimeoutTest do
  use ExUnit.Case, async: true

  # The decision (no default timeout) is written where options are
  # documented and in the README, and the code does what they say.
  test "the default call timeout is :infinity, and the docs say so and why" do
    assert {:ok, %{timeout: nil}} = Wasmbeam.CallOptions.to_native([])

    {:docs_v1, _, _, _, %{"en" => doc}, _, _} = Code.fetch_docs(Wasmbeam.CallOptions)
    assert doc =~ "## The default timeout is `:infinity`"
    assert doc =~ "Wasmex"

    readme = File.read!(Path.expand("../../README.md", __DIR__))
    assert readme =~ "the\ndefault is `:infinity`"
    assert readme =~ "`Wasmbeam.CallOptions` says why"
  end
end
