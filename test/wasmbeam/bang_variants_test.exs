defmodule Wasmbeam.BangVariantsTest do
  # Every public function that answers `{:ok, _} | {:error, %Wasmbeam.Error{}}`
  # (or `:ok | {:error, _}`) has a `!` variant that returns the value or
  # raises the error, unless it is listed below with the reason why not.
  use ExUnit.Case, async: true

  import Bitwise

  alias Wasmbeam.{Error, Instance, Memory, Module, Pool, Wasi}

  # {module, function, arity} => why it has no `!` variant
  @exempt %{
    {Wasmbeam.Engine.Config, :new, 1} => "Engine.new!/1 takes the same options",
    {Wasmbeam.Engine.Config, :validate, 1} => "a check; Engine.new!/1 raises its error",
    {Wasmbeam.Module, :validate, 2} => "a check: its error is the answer",
    {Wasmbeam.Instance, :stop, 3} => "stop functions answer :ok or why not, like GenServer.stop",
    {Wasmbeam.Pool, :stop, 3} => "stop functions answer :ok or why not, like GenServer.stop",
    {Wasmbeam.InstanceSupervisor, :stop_instance, 2} => "as Instance.stop/3",
    {Wasmbeam.Instance.Server, :info, 1} => "a status query",
    {Wasmbeam.Instance.Server, :async_call, 4} => "await!/2 raises the call's error",
    {Wasmbeam.Job, :outcome, 2} => "answers what an Oban worker returns, not {:ok, _}",
    {Wasmbeam.Job, :coerce_args, 2} => "a helper of Job.run/4",
    {Wasmbeam.ModuleCache, :clear, 1} => "maintenance",
    {Wasmbeam.ModuleCache, :fetch, 3} =>
      "compile!/3 is the same lookup; fetch/3 adds where the module came from, for tools",
    {Wasmbeam.Wasi.Pipe, :close, 1} => "closing twice is the only error",
    # Build tooling, not the runtime API: called by Mix tasks, which turn
    # the {:error, message} (a string, not a Wasmbeam.Error) into a compile
    # diagnostic or Mix.raise/1
    {Mix.Wasmbeam.Platform, :current, 1} => "the NIF compiler reports an unsupported OS",
    {Mix.Wasmbeam.Platform, :for_os, 2} => "current/1 for a given OS, for tests",
    {Mix.Wasmbeam.Prebuilt, :source, 2} =>
      "the NIF compiler reports a bad WASMBEAM_PREBUILT or :prebuilt_nif",
    {Mix.Wasmbeam.Prebuilt, :package, 3} => "mix wasmbeam.package_nif Mix.raises its error"
  }

  defp answers_ok_or_error?(name, clauses) do
    spec = Enum.map_join(clauses, " ", &Macro.to_string(Code.Typespec.spec_to_quoted(name, &1)))
    (spec =~ "{:ok," or spec =~ ":: :ok |") and spec =~ "{:error,"
  end

  defp public_functions(module) do
    case Code.fetch_docs(module) do
      {:docs_v1, _, _, _, moduledoc, _, docs} when moduledoc != :hidden ->
        for {{:function, name, arity}, _, _, doc, _} <- docs, doc != :hidden, do: {name, arity}

      _ ->
        []
    end
  end

  test "every public {:ok, _} | {:error, _} function has a ! variant, or a reason in @exempt" do
    {:ok, modules} = :application.get_key(:wasmbeam, :modules)

    missing =
      for module <- modules,
          Code.ensure_loaded?(module),
          public = public_functions(module),
          public != [],
          {:ok, specs} = Code.Typespec.fetch_specs(module),
          {{name, arity}, clauses} <- specs,
          {name, arity} in public,
          not String.ends_with?(Atom.to_string(name), "!"),
          answers_ok_or_error?(name, clauses),
          not function_exported?(module, :"#{name}!", arity),
          not Map.has_key?(@exempt, {module, name, arity}),
          do: "#{inspect(module)}.#{name}/#{arity}"

    assert missing == [],
           "add a ! variant (Error.unwrap!/1), or an entry with its reason in @exempt: " <>
             Enum.join(Enum.sort(missing), ", ")

    # the exemptions name functions that exist
    for {{module, name, arity}, _why} <- @exempt do
      Code.ensure_loaded!(module)
      assert function_exported?(module, name, arity), "#{inspect(module)}.#{name}/#{arity}"
    end
  end

  test "Wasmbeam.Error is an exception, raised by the ! variants" do
    assert Exception.exception?(%Error{})
    error = assert_raise Error, fn -> Module.compile!("(module") end
    assert error.kind == :parse
  end

  @add ~S[(module (memory (export "memory") 1) (global (export "g") (mut i32) (i32.const 5))
    (table (export "t") 1 funcref)
    (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))]

  test "the ! variants return the value or raise the error" do
    instance = Wasmbeam.load!(@add)
    assert_raise Error, ~r/\(parse\)/, fn -> Wasmbeam.load!("(module") end

    add = Instance.func!(instance, "add")
    assert Wasmbeam.Func.call!(add, [1, 2]) == [3]
    assert_raise Error, ~r/\(not_found\)/, fn -> Instance.func!(instance, "nope") end
    assert_raise Error, ~r/not a function/, fn -> Instance.func!(instance, "memory") end

    memory = Instance.memory!(instance, "memory")
    assert %Wasmbeam.Memory{} = Instance.export!(instance, "memory")
    assert Memory.write!(memory, 0, "hi") == :ok
    assert Memory.read!(memory, 0, 2) == "hi"
    assert Memory.size!(memory) == 65_536
    assert Memory.pages!(memory) == 1
    assert Memory.grow!(memory, 1) == 1
    assert_raise Error, fn -> Memory.write!(memory, 1 <<< 40, "x") end

    global = Instance.global!(instance, "g")
    assert Wasmbeam.Global.get!(global) == 5
    assert Wasmbeam.Global.set!(global, 6) == :ok
    table = Instance.table!(instance, "t")
    assert Wasmbeam.Table.size!(table) == 1
    assert Wasmbeam.Table.get!(table, 0) == nil
    assert_raise Error, fn -> Wasmbeam.Table.get!(table, 5) end

    key = :crypto.strong_rand_bytes(32)
    bytes = Module.serialize!(instance.module, key: key)
    assert %Module{} = Module.deserialize!(bytes, key: key)
    assert_raise Error, ~r/deserialize/, fn -> Module.deserialize!("junk", key: key) end

    {:ok, pool} = Pool.start_link(module: instance.module, size: 1)
    assert Pool.call!(pool, "add", [2, 2]) == [4]
    assert %{size: 1} = Pool.stats!(pool)
    assert_raise Error, ~r/\(arity\)/, fn -> Pool.call!(pool, "add", [2]) end

    {:ok, server} = Instance.start_link(module: instance.module)
    {:ok, request} = Instance.Server.async_call(server, "add", [3, 4])
    assert Instance.Server.await!(request) == [7]
  end

  test "host functions use the Caller's ! variants" do
    wat = ~S[(module (import "env" "echo" (func $echo (param i32 i32) (result i32)))
      (memory (export "memory") 1) (data (i32.const 0) "abc")
      (func (export "twice") (param i32) (result i32) local.get 0 i32.const 2 i32.mul)
      (func (export "run") (result i32) (call $echo (i32.const 0) (i32.const 3))))]

    echo = fn caller, ptr, len ->
      text = Wasmbeam.Caller.read!(caller, ptr, len)
      :ok = Wasmbeam.Caller.write!(caller, 10, String.upcase(text))
      [doubled] = Wasmbeam.Caller.call!(caller, "twice", [len])
      doubled + Wasmbeam.Caller.memory_size!(caller)
    end

    instance = Wasmbeam.load!(wat, %{"env" => %{"echo" => {:fn, [:i32, :i32], [:i32], echo}}})
    assert Instance.call!(instance, "run", []) == [6 + 65_536]
    assert Memory.read!(Instance.memory!(instance, "memory"), 10, 3) == "ABC"

    # wrong arguments are :argument errors, not FunctionClauseErrors
    misuse = fn caller, _ptr, _len ->
      send(self(), {:write, Wasmbeam.Caller.write(caller, 0, 42)})
      send(self(), {:call, Wasmbeam.Caller.call(caller, :twice, [1])})
      send(self(), {:args, Wasmbeam.Caller.call(caller, "twice", 1)})
      0
    end

    instance = Wasmbeam.load!(wat, %{"env" => %{"echo" => {:fn, [:i32, :i32], [:i32], misuse}}})
    assert Instance.call!(instance, "run", []) == [0]
    assert_received {:write, {:error, %Error{kind: :argument}}}

    assert_received {:call,
                     {:error,
                      %Error{kind: :argument, message: "an export name must be a string" <> _}}}

    assert_received {:args, {:error, %Error{kind: :argument}}}
  end

  test "compile_file!/3 takes options, and the engine may be left out", %{} do
    assert %Module{} = module = Module.compile_file!("examples/fib.wat", cache: true)
    assert {:ok, ^module} = Module.compile_file("examples/fib.wat", cache: true)

    assert %Module{} =
             Module.compile_file!(Wasmbeam.Engine.default(), "examples/fib.wat", cache: false)

    assert {:ok, ^module} = Module.compile(File.read!("examples/fib.wat"), cache: true)
    assert_raise Error, ~r/cannot read/, fn -> Module.compile_file!("no/such.wat", []) end
  end

  test "Wasi.run!/2 and Wasi.output!/1" do
    assert %{exit_code: 0} =
             Wasi.run!(~S[(module (memory (export "memory") 1) (func (export "_start")))])

    instance = Instance.new!(Module.compile!("(module)"), %{}, wasi: [])
    assert Wasi.output!(instance) == %{stdout: "", stderr: ""}
  end
end
