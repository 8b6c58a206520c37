defmodule Wasmbeam.ComponentTest do
  # Components on the core execution model: compile, describe, call,
  # host imports in both handler modes, failures, limits, caller death,
  # instance processes and pools. Component WAT, no toolchain.
  use ExUnit.Case, async: true

  doctest Wasmbeam.Component

  alias Wasmbeam.{Component, Engine, Error, Instance, Pool, Store}
  alias Wasmbeam.Component.Instance, as: CI
  alias Wasmbeam.Test.ComponentWat

  import Bitwise, only: [&&&: 2]

  setup_all do
    {:ok,
     calc: Component.compile!(ComponentWat.calc()), echo: Component.compile!(ComponentWat.echo())}
  end

  defp calc!(ctx, log \\ fn _caller, x -> x * 10 end, options \\ []),
    do: CI.new!(ctx.calc, %{"log" => log}, options)

  describe "compiling" do
    test "exports and imports print as WIT", ctx do
      assert Component.imports(ctx.calc) == [{"log", {:func, "func(msg: u32) -> u32"}}]
      assert {"add", {:func, "func(a: u32, b: u32) -> u32"}} in Component.exports(ctx.calc)

      assert {"echo-point",
              {:func,
               "func(p: record { x-coord: s32, label: string }) -> record { x-coord: s32, label: string }"}} in Component.exports(
               ctx.echo
             )

      assert inspect(ctx.calc) =~ "#Wasmbeam.Component<"
    end

    test "a core module, garbage and a broken binary are clear errors" do
      assert {:error, %Error{kind: :argument, message: msg}} = Component.compile("(module)")
      assert msg =~ "core module"
      assert {:error, %Error{kind: :parse}} = Component.compile("not wat at all (")
      assert {:error, %Error{kind: :validation}} = Component.compile(<<0, "asm", 13, 0, 1, 0, 9>>)
      assert {:error, %Error{kind: :argument}} = Component.compile(:nope)
      assert_raise Error, fn -> Component.compile!("(module)") end
    end

    test "a component of another engine is refused at instantiation", ctx do
      {:ok, other} = Store.new(Engine.new!(), [])
      assert {:error, %Error{kind: :link, message: msg}} = CI.new(ctx.echo, %{}, store: other)
      assert msg =~ "another engine"
    end
  end

  describe "serialized components" do
    test "round-trip sealed, and refuse what is not theirs", ctx do
      key = :crypto.strong_rand_bytes(32)
      {:ok, bytes} = Component.serialize(ctx.calc, key: key)
      {:ok, back} = Component.deserialize(bytes, key: key)
      assert Component.exports(back) == Component.exports(ctx.calc)
      i = CI.new!(back, %{"log" => fn _, x -> x end})
      assert CI.call(i, "add", [1, 2]) == {:ok, 3}

      assert {:error, %Error{kind: :deserialize}} =
               Component.deserialize(bytes, key: :crypto.strong_rand_bytes(32))

      flipped =
        :binary.part(bytes, 0, byte_size(bytes) - 1) <> <<:binary.last(bytes) + 1 &&& 255>>

      assert {:error, %Error{kind: :deserialize}} = Component.deserialize(flipped, key: key)
      assert {:error, %Error{kind: :argument}} = Component.deserialize(bytes, [])

      {:ok, unkeyed} = Component.serialize(ctx.calc)
      assert {:ok, %Component{}} = Component.deserialize_unsafe(unkeyed)
      assert {:error, %Error{kind: :deserialize}} = Component.deserialize_unsafe(<<"junk">>)

      # A serialized core module is not a component.
      {:ok, module_bytes} = Wasmbeam.Module.serialize(Wasmbeam.Module.compile!("(module)"))

      assert {:error, %Error{kind: :deserialize, message: msg}} =
               Component.deserialize_unsafe(module_bytes)

      assert msg =~ "not a serialized component"
    end
  end

  describe "the module cache" do
    test "a component is cached in memory and on disk, and comes back as a component", ctx do
      dir = Wasmbeam.Test.Tmp.path("component-cache")
      on_exit(fn -> File.rm_rf(dir) end)
      name = :"component_cache_#{System.unique_integer([:positive])}"
      start_supervised!({Wasmbeam.ModuleCache, name: name, dir: dir})
      wat = ComponentWat.calc()

      {:ok, %Component{} = first} = Component.compile(wat, cache: name)
      {:ok, second} = Component.compile(wat, cache: name)
      assert first == second
      assert %{compiles: 1} = Wasmbeam.ModuleCache.stats(name)

      # A new cache over the same directory loads the sealed artifact.
      other = :"#{name}_2"
      start_supervised!({Wasmbeam.ModuleCache, name: other, dir: dir}, id: other)
      {:ok, %Component{} = loaded} = Component.compile(wat, cache: other)
      assert %{compiles: 0, disk_hits: 1} = Wasmbeam.ModuleCache.stats(other)
      assert CI.call(CI.new!(loaded, %{"log" => fn _, x -> x end}), "add", [1, 2]) == {:ok, 3}

      # Each kind's compile refuses the other's bytes, cached or not.
      assert {:error, %Error{kind: :argument}} = Wasmbeam.Module.compile(wat, cache: name)
      assert {:error, %Error{kind: :argument}} = Component.compile("(module)", cache: name)
      _ = ctx
    end

    test "precompiled components ship in a directory and load from it", _ctx do
      dir = Wasmbeam.Test.Tmp.path("component-precompiled")
      on_exit(fn -> File.rm_rf(dir) end)
      engine = Engine.default()
      {:ok, _path} = Wasmbeam.ModuleCache.precompile(engine, ComponentWat.echo(), dir)
      name = :"component_pre_#{System.unique_integer([:positive])}"

      start_supervised!(
        {Wasmbeam.ModuleCache,
         name: name, dir: Wasmbeam.Test.Tmp.path("component-own"), precompiled: [dir]}
      )

      {:ok, %Component{} = c} = Component.compile(ComponentWat.echo(), cache: name)
      assert %{compiles: 0, precompiled_hits: 1} = Wasmbeam.ModuleCache.stats(name)
      assert CI.call(CI.new!(c), "echo-string", ["x"]) == {:ok, "x"}
    end

    test "component?/1 tells the kinds apart" do
      assert Component.component?(ComponentWat.calc())
      assert Component.component?(";; a comment\n(component)")
      refute Component.component?("(module)")
      refute Component.component?(<<0, "asm", 1, 0, 0, 0>>)
      assert Component.component?(<<0, "asm", 13, 0, 1, 0>>)
    end
  end

  describe "calls" do
    test "values go in and come out; bad ones name their WIT path", ctx do
      i = calc!(ctx)
      assert CI.call(i, "add", [2, 3]) == {:ok, 5}
      assert CI.call!(i, "add", [4_000_000_000, 294_967_296]) == 0

      assert {:error, %Error{kind: :type, message: "argument 1 (a) is out of range for u32: -1"}} =
               CI.call(i, "add", [-1, 3])

      assert {:error, %Error{kind: :type, message: "argument 2 (b) must be u32, got: 1.5"}} =
               CI.call(i, "add", [1, 1.5])

      assert {:error, %Error{kind: :arity}} = CI.call(i, "add", [1])
      assert {:error, %Error{kind: :not_found}} = CI.call(i, "nope", [])
      assert {:error, %Error{kind: :not_found}} = CI.call(i, "my:pkg/iface#add", [1, 2])
      assert {:error, %Error{kind: :argument}} = CI.call(i, :add, [1, 2])
      assert {:error, %Error{kind: :argument}} = CI.call(i, <<255>>, [1, 2])
      assert CI.call(i, "add", [1, 1]) == {:ok, 2}
    end

    test "strings, bytes and records", ctx do
      i = CI.new!(ctx.echo)
      assert CI.call(i, "echo-string", ["héllo"]) == {:ok, "héllo"}
      assert CI.call(i, "echo-bytes", [<<1, 2, 3>>]) == {:ok, <<1, 2, 3>>}
      assert CI.call(i, "echo-bytes", [[1, 2, 3]]) == {:ok, <<1, 2, 3>>}
      assert CI.call(i, "echo-bytes", [<<>>]) == {:ok, <<>>}

      assert CI.call(i, "echo-point", [%{x_coord: -5, label: "p"}]) ==
               {:ok, %{x_coord: -5, label: "p"}}

      assert CI.call(i, "echo-point", [%{"x_coord" => 1, "label" => ""}]) ==
               {:ok, %{x_coord: 1, label: ""}}

      assert {:error, %Error{kind: :type, message: msg}} =
               CI.call(i, "echo-string", [<<"ok", 255>>])

      assert msg =~ "argument 1 (s) must be a UTF-8 string; invalid UTF-8 at byte 2"
      assert {:error, %Error{kind: :type, message: msg}} = CI.call(i, "echo-bytes", [[1, 300]])
      assert msg == "argument 1 (b).1 is out of range for u8: 300"

      assert {:error, %Error{kind: :type, message: msg}} =
               CI.call(i, "echo-point", [%{x_coord: 1}])

      assert msg =~ "field label is missing"

      assert {:error, %Error{kind: :type, message: msg}} =
               CI.call(i, "echo-point", [%{x_coord: 1, label: "a", z: 2}])

      assert msg =~ "keys that are not fields"

      assert {:error, %Error{kind: :type, message: "argument 1 (p).label must be string, got: 7"}} =
               CI.call(i, "echo-point", [%{x_coord: 1, label: 7}])

      # Nothing was lost: the instance still answers.
      assert CI.call(i, "echo-string", ["again"]) == {:ok, "again"}
    end

    test "a megabyte of bytes goes in and out", ctx do
      i = CI.new!(ctx.echo)
      big = :crypto.strong_rand_bytes(1_048_576)
      assert CI.call(i, "echo-bytes", [big]) == {:ok, big}
      assert :ok = CI.call(i, "reset", [])

      assert CI.call(i, "echo-string", [String.duplicate("é", 300_000)]) ==
               {:ok, String.duplicate("é", 300_000)}
    end
  end

  describe "host imports" do
    test "a handler in the calling process answers the guest", ctx do
      me = self()
      i = calc!(ctx, fn _caller, x -> send(me, {:log, self(), x}) && x * 10 end)
      assert CI.call(i, "run", [4]) == {:ok, 41}
      assert_received {:log, ^me, 4}
      assert CI.call(i, "calls", [100]) == {:ok, 50_500}
    end

    test "a handler in a process answers GenServer calls", ctx do
      {:ok, server} = Agent.start_link(fn -> nil end)

      defmodule Handler do
        use GenServer
        def init(_), do: {:ok, nil}

        def handle_call({:wasmbeam_host_call, "log", _caller, [x]}, _from, s),
          do: {:reply, x + 1, s}
      end

      {:ok, handler} = GenServer.start_link(Handler, nil)
      i = CI.new!(ctx.calc, %{"log" => {:process, handler}})
      assert CI.call(i, "run", [4]) == {:ok, 6}
      Agent.stop(server)
    end

    test "a failing handler traps the call with the import's name; the component must be made again",
         ctx do
      i = calc!(ctx, fn _caller, _x -> raise "boom" end)
      assert {:error, %Error{kind: :trap, message: msg}} = CI.call(i, "run", [4])
      assert msg =~ "host function log: the handler raised ** (RuntimeError) boom"

      assert {:error, %Error{kind: :trap, trap: :cannot_enter_component, message: msg}} =
               CI.call(i, "run", [4])

      assert msg =~ "instantiate the component again"

      bad = calc!(ctx, fn _caller, _x -> "not a number" end)
      assert {:error, %Error{kind: :trap, message: msg}} = CI.call(bad, "run", [4])
      assert msg =~ ~s(the handler returned "not a number": the result must be u32)

      thrower = calc!(ctx, fn _caller, _x -> throw(:up) end)
      assert {:error, %Error{kind: :trap, message: msg}} = CI.call(thrower, "run", [1])
      assert msg =~ "threw :up"
    end

    test "bindings are checked against the component's imports", ctx do
      assert {:error, %Error{kind: :link, message: msg}} = CI.new(ctx.calc, %{})
      assert msg =~ "log"

      assert {:error,
              %Error{kind: :link, message: "the component imports no function or resource nope"}} =
               CI.new(ctx.calc, %{"log" => fn _, x -> x end, "nope" => fn _ -> 1 end})

      assert {:error,
              %Error{
                kind: :link,
                message: "the component imports no function or resource my:x/y#log"
              }} = CI.new(ctx.calc, %{"my:x/y" => %{"log" => fn _, x -> x end}})

      assert {:error, %Error{kind: :argument, message: msg}} =
               CI.new(ctx.calc, %{"log" => fn x -> x end})

      assert msg =~ "import log: a host function handler must be a function of arity 2"

      assert {:error, %Error{kind: :argument}} = CI.new(ctx.calc, %{log: fn _, x -> x end})
      assert {:error, %Error{kind: :argument}} = CI.new(ctx.calc, [])
      assert {:error, %Error{kind: :argument}} = CI.new(:nope, %{})
    end
  end

  describe "the execution model" do
    test "timeout and fuel stop a looping guest; a trapped store enters no component again",
         ctx do
      i = calc!(ctx)
      assert {:error, %Error{kind: :timeout}} = CI.call(i, "spin", [], timeout: 30)
      # The component model: after a trap, no component of that store may
      # be entered again; a new store serves.
      assert {:ok, again} = CI.new(ctx.calc, %{"log" => fn _, x -> x end}, store: i.store)

      assert {:error, %Error{kind: :trap, trap: :cannot_enter_component}} =
               CI.call(again, "add", [1, 2])

      assert CI.call(calc!(ctx), "add", [1, 2]) == {:ok, 3}

      engine = Engine.new!(consume_fuel: true)
      calc = Component.compile!(engine, ComponentWat.calc())
      f = CI.new!(calc, %{"log" => fn _, x -> x end}, fuel: 1_000_000)
      assert {:error, %Error{kind: :out_of_fuel}} = CI.call(f, "spin", [], fuel: 10_000)
    end

    test "a guest trap names its trap code", ctx do
      i = calc!(ctx)
      assert {:error, %Error{kind: :trap, trap: :unreachable}} = CI.call(i, "boom", [])
    end

    test "the caller's death cancels the guest and frees the store", ctx do
      i = calc!(ctx)
      me = self()

      pid =
        spawn(fn ->
          send(me, :started)
          CI.call(i, "spin", [])
        end)

      assert_receive :started
      ref = Process.monitor(pid)
      Wasmbeam.Test.Wat.await_busy(i.store)
      Process.exit(pid, :kill)
      assert_receive {:DOWN, ^ref, :process, ^pid, :killed}

      # Cancelled is trapped: the store is idle again (a caller waiting
      # for it gets it) and enters none of its components again.
      assert {:error, %Error{kind: :trap, trap: :cannot_enter_component}} =
               CI.call(i, "add", [1, 2], wait: true, timeout: 5_000)
    end

    test "a second caller waits for the store, or is told it is busy", ctx do
      i = calc!(ctx)
      task = Task.async(fn -> CI.call(i, "spin", [], timeout: 300) end)
      Wasmbeam.Test.Wat.await_busy(i.store)
      assert {:error, %Error{kind: :busy}} = CI.call(i, "add", [1, 2], wait: false)
      assert {:error, %Error{kind: :timeout}} = Task.await(task)
    end

    test "store limits hold for components", ctx do
      assert {:error, %Error{}} = CI.new(ctx.echo, %{}, memory_size: 65_536)
    end
  end

  describe "instance processes and pools" do
    test "an instance process serves a component and makes it again after a trap", ctx do
      {:ok, server} =
        Instance.start_link(module: ctx.calc, imports: %{"log" => fn _, x -> x * 2 end})

      assert Instance.call(server, "run", [5]) == {:ok, 11}
      assert {:error, %Error{kind: :timeout}} = Instance.call(server, "spin", [], timeout: 30)
      assert Instance.call(server, "add", [2, 2]) == {:ok, 4}
      assert {:error, %Error{kind: :trap}} = Instance.call(server, "boom", [])
      assert Instance.call(server, "run", [1]) == {:ok, 3}
    end

    test "a pool of components replaces an instance that trapped", ctx do
      pool =
        start_supervised!(
          {Pool, module: ctx.calc, imports: %{"log" => fn _, x -> x end}, size: 1}
        )

      assert Pool.call(pool, "add", [1, 2]) == {:ok, 3}
      assert {:error, %Error{kind: :trap}} = Pool.call(pool, "boom", [])
      assert Pool.call(pool, "add", [2, 2]) == {:ok, 4}
      assert {:error, %Error{kind: :timeout}} = Pool.call(pool, "spin", [], timeout: 30)
      assert Pool.call(pool, "run", [2]) == {:ok, 3}
    end

    test "a component linked once instantiates many times, with its handlers", ctx do
      me = self()

      {:ok, linked} =
        Wasmbeam.LinkedModule.new(ctx.calc, %{"log" => fn _, x -> send(me, {:log, x}) && x end})

      assert inspect(linked) =~ "#Wasmbeam.LinkedModule<#Wasmbeam.Component<"

      for n <- 1..3 do
        {:ok, %CI{} = i} = Instance.new(linked)
        assert Instance.call(i, "run", [n]) == {:ok, n + 1}
        assert_received {:log, ^n}
      end

      assert {:error, %Error{kind: :argument}} =
               Instance.new(linked, %{"log" => fn _, x -> x end})

      assert {:error, %Error{kind: :link}} =
               Wasmbeam.LinkedModule.new(ctx.calc, %{"nope" => fn _ -> 1 end})

      # Linked with WASI, each instance needs its own WASI context.
      {:ok, with_wasi} =
        Wasmbeam.LinkedModule.new(ctx.calc, %{"log" => fn _, x -> x end}, wasi: true)

      assert {:error, %Error{kind: :argument, message: message}} = Instance.new(with_wasi)
      assert message =~ "wasi: options"
      assert {:ok, %CI{} = i} = Instance.new(with_wasi, %{}, wasi: [])
      assert Instance.call(i, "add", [1, 2]) == {:ok, 3}

      assert {:error, %Error{kind: :argument}} =
               Wasmbeam.LinkedModule.new(ctx.calc, %{"log" => fn _, x -> x end}, wasi: :yes)

      other = Store.new!(Engine.new!(), [])
      assert {:error, %Error{kind: :link}} = Instance.new(linked, %{}, store: other)
    end

    test "Instance.new and Instance.call take components too", ctx do
      {:ok, i} = Instance.new(ctx.calc, %{"log" => fn _, x -> x end})
      assert Instance.call(i, "add", [1, 2]) == {:ok, 3}
    end
  end
end
