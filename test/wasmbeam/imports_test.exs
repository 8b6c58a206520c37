defmodule Wasmbeam.ImportsTest do
  use ExUnit.Case, async: true

  import Bitwise, only: [<<<: 2]
  import Wasmbeam.Test.Wat

  alias Wasmbeam.{Engine, Error, Func, Global, Instance, Memory, Module, Store, Table}

  # Exports one of each kind.
  @lib ~S[(module
    (memory (export "mem") 1)
    (table (export "tab") 2 funcref)
    (global (export "gl") (mut i32) (i32.const 3))
    (global (export "k") i64 (i64.const 100))
    (func $double (export "double") (param i32) (result i32) local.get 0 i32.const 2 i32.mul)
    (elem (i32.const 0) $double))]

  # Imports all of them from "lib".
  @app ~S[(module
    (type $i2i (func (param i32) (result i32)))
    (import "lib" "double" (func $d (param i32) (result i32)))
    (import "lib" "mem" (memory 1))
    (import "lib" "tab" (table 2 funcref))
    (import "lib" "gl" (global $gl (mut i32)))
    (func (export "run") (param i32) (result i32) local.get 0 call $d global.get $gl i32.add)
    (func (export "indirect") (param i32) (result i32)
      local.get 0 (call_indirect (type $i2i) (i32.const 0)))
    (func (export "poke") (param i32 i32) local.get 0 local.get 1 i32.store)
    (func (export "set_gl") (param i32) local.get 0 global.set $gl))]

  setup_all do
    %{lib: Module.compile!(@lib), app: Module.compile!(@app)}
  end

  defp handles(instance, names) do
    Map.new(names, fn name ->
      {:ok, export} = Instance.export(instance, name)
      {name, export}
    end)
  end

  describe "linking instances of one store" do
    test "through a whole instance", %{lib: lib, app: app} do
      store = Store.new!()
      lib_i = Instance.new!(lib, %{}, store: store)
      app_i = Instance.new!(app, %{"lib" => lib_i}, store: store)

      assert {:ok, [13]} = Instance.call(app_i, "run", [5])
      assert {:ok, [14]} = Instance.call(app_i, "indirect", [7])

      # memory and globals are shared, not copied
      assert {:ok, []} = Instance.call(app_i, "poke", [16, 0x0102_0304])
      {:ok, mem} = Instance.memory(lib_i, "mem")
      assert {:ok, <<4, 3, 2, 1>>} = Memory.read(mem, 16, 4)

      assert {:ok, []} = Instance.call(app_i, "set_gl", [1000])
      {:ok, gl} = Instance.global(lib_i, "gl")
      assert {:ok, 1000} = Global.get(gl)
      assert {:ok, [1010]} = Instance.call(app_i, "run", [5])
    end

    test "through individual Func/Memory/Global/Table handles", %{lib: lib, app: app} do
      store = Store.new!()
      lib_i = Instance.new!(lib, %{}, store: store)
      imports = %{"lib" => handles(lib_i, ["double", "mem", "tab", "gl"])}
      assert %{"double" => %Func{}, "mem" => %Memory{}, "tab" => %Table{}} = imports["lib"]

      app_i = Instance.new!(app, imports, store: store)
      assert {:ok, [13]} = Instance.call(app_i, "run", [5])
      assert {:ok, [18]} = Instance.call(app_i, "indirect", [9])

      {:ok, gl} = Instance.global(lib_i, "gl")
      assert :ok = Global.set(gl, 50)
      assert {:ok, [60]} = Instance.call(app_i, "run", [5])
    end

    test "a handle under another name works", %{lib: lib} do
      store = Store.new!()
      lib_i = Instance.new!(lib, %{}, store: store)
      {:ok, double} = Instance.func(lib_i, "double")

      user = Module.compile!(~S[(module (import "x" "twice" (func $t (param i32) (result i32)))
          (func (export "quad") (param i32) (result i32) local.get 0 call $t call $t))])

      instance = Instance.new!(user, %{"x" => %{"twice" => double}}, store: store)
      assert {:ok, [20]} = Instance.call(instance, "quad", [5])
    end

    test "a funcref from a table can be imported", %{lib: lib} do
      store = Store.new!()
      lib_i = Instance.new!(lib, %{}, store: store)
      {:ok, tab} = Instance.table(lib_i, "tab")
      {:ok, %Func{} = f} = Table.get(tab, 0)

      user = Module.compile!(~S[(module (import "x" "f" (func $f (param i32) (result i32)))
          (func (export "g") (param i32) (result i32) local.get 0 call $f))])

      instance = Instance.new!(user, %{"x" => %{"f" => f}}, store: store)
      assert {:ok, [8]} = Instance.call(instance, "g", [4])
    end
  end

  describe "defined imports" do
    @user ~S[(module
      (import "env" "counter" (global $c (mut i64)))
      (import "env" "base" (global $b i32))
      (import "env" "pi" (global $pi f64))
      (import "env" "mem" (memory 1 2))
      (import "env" "tab" (table 2 funcref))
      (export "counter" (global $c))
      (export "mem" (memory 0))
      (export "tab" (table 0))
      (func (export "inc") global.get $c i64.const 1 i64.add global.set $c)
      (func (export "counter_value") (result i64) global.get $c)
      (func (export "base") (result i32) global.get $b)
      (func (export "pi") (result f64) global.get $pi)
      (func (export "grow") (result i32) i32.const 1 memory.grow)
      (func (export "load") (param i32) (result i32) local.get 0 i32.load8_u)
      (func (export "table_size") (result i32) table.size 0))]

    @defined %{
      "env" => %{
        "counter" => {:global, :i64, 1, :var},
        "base" => {:global, :i32, 5},
        "pi" => {:global, :f64, 3.25, :const},
        "mem" => {:memory, 1, 2},
        "tab" => {:table, :funcref, 2}
      }
    }

    setup do
      %{user: Module.compile!(@user)}
    end

    test "globals, memories and tables are created with the given values", %{user: user} do
      instance = Instance.new!(user, @defined)
      assert {:ok, [5]} = Instance.call(instance, "base", [])
      assert {:ok, [3.25]} = Instance.call(instance, "pi", [])
      assert {:ok, [1]} = Instance.call(instance, "counter_value", [])
      assert {:ok, [2]} = Instance.call(instance, "table_size", [])

      {:ok, mem} = Instance.memory(instance, "mem")
      assert {:ok, 1} = Memory.pages(mem)
      # {:memory, 1, 2}: one more page, then the maximum
      assert {:ok, [1]} = Instance.call(instance, "grow", [])
      assert {:ok, [-1]} = Instance.call(instance, "grow", [])
      assert {:ok, 2} = Memory.pages(mem)

      {:ok, tab} = Instance.table(instance, "tab")
      assert {:ok, nil} = Table.get(tab, 1)
    end

    test "a mutable global is shared both ways", %{user: user} do
      instance = Instance.new!(user, @defined)
      {:ok, counter} = Instance.global(instance, "counter")
      assert %Global{type: :i64, mutable: true} = counter

      assert {:ok, []} = Instance.call(instance, "inc", [])
      assert {:ok, []} = Instance.call(instance, "inc", [])
      assert {:ok, 3} = Global.get(counter)

      assert :ok = Global.set(counter, -10)
      assert {:ok, []} = Instance.call(instance, "inc", [])
      assert {:ok, [-9]} = Instance.call(instance, "counter_value", [])
    end

    test "each instantiation gets fresh definitions", %{user: user} do
      a = Instance.new!(user, @defined)
      b = Instance.new!(user, @defined)
      assert {:ok, []} = Instance.call(a, "inc", [])
      assert {:ok, [2]} = Instance.call(a, "counter_value", [])
      assert {:ok, [1]} = Instance.call(b, "counter_value", [])
    end

    test "an immutable definition for a mutable import is a :link error", %{user: user} do
      imports = put_in(@defined, ["env", "counter"], {:global, :i64, 1})

      assert {:error, %Error{kind: :link, message: msg}} = Instance.new(user, imports)
      assert msg =~ "counter"
    end

    test "a global of the wrong value type is a :link error", %{user: user} do
      imports = put_in(@defined, ["env", "base"], {:global, :i64, 5})
      assert {:error, %Error{kind: :link, message: msg}} = Instance.new(user, imports)
      assert msg =~ "base"
    end

    test "a global value that does not fit its type is a :type error", %{user: user} do
      imports = put_in(@defined, ["env", "base"], {:global, :i32, 1.5})
      assert {:error, %Error{kind: :type}} = Instance.new(user, imports)

      imports = put_in(@defined, ["env", "base"], {:global, :i32, 1 <<< 40})
      assert {:error, %Error{kind: :type}} = Instance.new(user, imports)
    end

    test "an unknown value type or mutability is refused", %{user: user} do
      imports = put_in(@defined, ["env", "base"], {:global, :int, 1})
      assert {:error, %Error{kind: :argument}} = Instance.new(user, imports)

      imports = put_in(@defined, ["env", "base"], {:global, :i32, 1, :mutable})
      assert {:error, %Error{kind: :link}} = Instance.new(user, imports)
    end

    test "a table of the wrong element type is a :link error", %{user: user} do
      imports = put_in(@defined, ["env", "tab"], {:table, :externref, 2})
      assert {:error, %Error{kind: :link, message: msg}} = Instance.new(user, imports)
      assert msg =~ "tab"
    end

    test "malformed definitions are :link errors", %{user: user} do
      for bad <- [
            {:memory, 2, 1},
            {:memory, -1},
            {:memory, :one},
            {:table, :i32, 2},
            {:table, :funcref, 3, 2},
            {:global, :i32},
            :memory
          ] do
        imports = put_in(@defined, ["env", "mem"], bad)
        assert {:error, %Error{kind: :link}} = Instance.new(user, imports), inspect(bad)
      end
    end

    test "a memory or table with other limits than the import is a :link error, not :limit",
         %{user: user} do
      for {name, bad} <- [
            {"mem", {:memory, 1, 5}},
            {"mem", {:memory, 1}},
            {"tab", {:table, :funcref, 1}}
          ] do
        imports = put_in(@defined, ["env", name], bad)

        assert {:error, %Error{kind: :link, message: msg}} = Instance.new(user, imports),
               inspect(bad)

        assert msg =~ name
      end
    end

    test "externref and funcref globals can be defined" do
      module = Module.compile!(~S[(module
          (import "env" "e" (global $e externref))
          (import "env" "f" (global $f funcref))
          (func (export "e") (result externref) global.get $e)
          (func (export "f") (result funcref) global.get $f))])

      store = Store.new!()

      lib =
        Instance.new!(
          Module.compile!(~S[(module (func (export "one") (result i32) i32.const 1))]),
          %{},
          store: store
        )

      {:ok, one} = Instance.func(lib, "one")
      term = %{pid: self(), list: [1, 2, 3]}

      instance =
        Instance.new!(
          module,
          %{"env" => %{"e" => {:global, :externref, term}, "f" => {:global, :funcref, one}}},
          store: store
        )

      assert {:ok, [^term]} = Instance.call(instance, "e", [])
      assert {:ok, [%Func{} = f]} = Instance.call(instance, "f", [])
      assert {:ok, [1]} = Func.call(f, [])

      # a funcref of another store is refused
      other = instance!(~S[(module (func (export "one") (result i32) i32.const 1))])
      {:ok, foreign} = Instance.func(other, "one")

      assert {:error, %Error{kind: :type}} =
               Instance.new(
                 module,
                 %{
                   "env" => %{
                     "e" => {:global, :externref, nil},
                     "f" => {:global, :funcref, foreign}
                   }
                 },
                 store: store
               )
    end
  end

  describe "link errors" do
    test "a missing import names it and its type" do
      module = Module.compile!(~S[(module (import "env" "f" (func (param i32) (result i64))))])

      assert {:error, %Error{kind: :link, message: msg}} = Instance.new(module)
      assert msg == "missing import \"env\" \"f\" (func (i32) -> (i64))"

      assert {:error, %Error{kind: :link, message: ^msg}} = Instance.new(module, %{"env" => %{}})

      assert {:error, %Error{kind: :link, message: ^msg}} =
               Instance.new(module, %{"env" => %{"g" => {:global, :i32, 1}}})

      assert {:error, %Error{kind: :link, message: ^msg}} = Instance.new(module, %{"env" => 5})
    end

    test "a whole instance that lacks the export is a missing import", %{lib: lib} do
      store = Store.new!()
      lib_i = Instance.new!(lib, %{}, store: store)

      module =
        Module.compile!(~S[(module (import "lib" "triple" (func (param i32) (result i32))))])

      assert {:error, %Error{kind: :link, message: msg}} =
               Instance.new(module, %{"lib" => lib_i}, store: store)

      assert msg =~ "triple"
    end

    test "the first missing import in module order is reported" do
      module = Module.compile!(~S[(module (import "a" "first" (global i32))
          (import "a" "second" (memory 1)))])

      assert {:error, %Error{message: msg}} = Instance.new(module, %{"a" => %{}})
      assert msg =~ "first"

      assert {:error, %Error{message: msg}} =
               Instance.new(module, %{"a" => %{"first" => {:global, :i32, 0}}})

      assert msg =~ "second"
    end

    test "an import of the wrong kind is a :link error", %{lib: lib, app: app} do
      store = Store.new!()
      lib_i = Instance.new!(lib, %{}, store: store)
      handles = handles(lib_i, ["double", "mem", "tab", "gl"])

      for {name, wrong} <- [
            {"double", handles["mem"]},
            {"mem", handles["double"]},
            {"tab", handles["gl"]},
            {"gl", handles["tab"]},
            {"double", {:global, :i32, 1}},
            {"double", 42},
            {"mem", "memory"}
          ] do
        imports = %{"lib" => Map.put(handles, name, wrong)}

        assert {:error, %Error{kind: :link, message: msg}} =
                 Instance.new(app, imports, store: store),
               "#{name} <- #{inspect(wrong)}"

        assert msg =~ name
      end
    end

    test "a function of the wrong signature is a :link error", %{lib: lib} do
      store = Store.new!()
      lib_i = Instance.new!(lib, %{}, store: store)

      module =
        Module.compile!(~S[(module (import "lib" "double" (func (param i64) (result i64))))])

      assert {:error, %Error{kind: :link, message: msg}} =
               Instance.new(module, %{"lib" => lib_i}, store: store)

      assert msg =~ "double"
    end

    test "a global of the wrong mutability or type is a :link error", %{lib: lib} do
      store = Store.new!()
      lib_i = Instance.new!(lib, %{}, store: store)

      for wat <- [
            ~S[(module (import "lib" "gl" (global i32)))],
            ~S[(module (import "lib" "gl" (global (mut i64))))],
            ~S[(module (import "lib" "k" (global (mut i64))))]
          ] do
        assert {:error, %Error{kind: :link}} =
                 Instance.new(Module.compile!(wat), %{"lib" => lib_i}, store: store),
               wat
      end
    end

    test "a table of the wrong element type is a :link error", %{lib: lib} do
      store = Store.new!()
      lib_i = Instance.new!(lib, %{}, store: store)
      wat = ~S[(module (import "lib" "tab" (table 1 externref)))]

      assert {:error, %Error{kind: :link}} =
               Instance.new(Module.compile!(wat), %{"lib" => lib_i}, store: store)
    end

    test "a memory or table smaller than the import needs is a :link error, not :limit",
         %{lib: lib} do
      store = Store.new!()
      lib_i = Instance.new!(lib, %{}, store: store)

      for wat <- [
            ~S[(module (import "lib" "mem" (memory 3)))],
            ~S[(module (import "lib" "tab" (table 5 funcref)))]
          ] do
        assert {:error, %Error{kind: :link}} =
                 Instance.new(Module.compile!(wat), %{"lib" => lib_i}, store: store),
               wat
      end
    end

    test "imports from another store are :link errors", %{lib: lib, app: app} do
      lib_i = Instance.new!(lib)

      assert {:error, %Error{kind: :link, message: msg}} = Instance.new(app, %{"lib" => lib_i})
      assert msg =~ "another store"

      handles = handles(lib_i, ["double", "mem", "tab", "gl"])

      # each kind on its own, the others from the right store
      store = Store.new!()
      good = handles(Instance.new!(lib, %{}, store: store), ["double", "mem", "tab", "gl"])

      for name <- ["double", "mem", "tab", "gl"] do
        imports = %{"lib" => Map.put(good, name, handles[name])}

        assert {:error, %Error{kind: :link, message: msg}} =
                 Instance.new(app, imports, store: store),
               name

        assert msg =~ "another store"
      end

      assert {:ok, _} = Instance.new(app, %{"lib" => good}, store: store)
    end

    test "linking to a whole instance whose store is busy is :busy, not a missing import" do
      store = Store.new!()

      lib =
        Instance.new!(
          Module.compile!(~S[(module (func (export "f")) (func (export "spin") (loop br 0)))]),
          %{},
          store: store
        )

      app = Module.compile!(~S[(module (import "lib" "f" (func)))])
      runner = Task.async(fn -> Instance.call(lib, "spin", [], timeout: 1_000) end)
      assert await_busy(store)

      result = Instance.new(app, %{"lib" => lib}, store: store)
      Task.await(runner, 10_000)
      assert {:error, %Error{kind: :busy}} = result
    end

    test "a host function handler of the wrong arity is refused with :link" do
      module = Module.compile!(~S[(module (import "env" "log" (func (param i32))))])
      imports = %{"env" => %{"log" => {:fn, [:i32], [], fn _ -> [] end}}}

      assert {:error, %Error{kind: :link, message: msg}} = Instance.new(module, imports)
      assert msg =~ "host function"
      assert msg =~ "log"
    end

    test "imports that are not a map are an :argument error", %{app: app} do
      for bad <- [[], [{"lib", %{}}], nil, :none, "lib"] do
        assert {:error, %Error{kind: :argument, message: msg}} = Instance.new(app, bad),
               inspect(bad)

        assert msg =~ "imports must be a map"
      end
    end

    test "a module from another engine than the store is a :link error", %{lib: lib} do
      other_engine = Engine.new!()
      store = Store.new!(other_engine)

      assert {:error, %Error{kind: :link, message: msg}} = Instance.new(lib, %{}, store: store)

      assert msg =~ "engine"

      # even when the imports are right
      assert {:ok, _} = Instance.new(Module.compile!(other_engine, @lib), %{}, store: store)
    end
  end
end
