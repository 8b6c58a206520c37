defmodule Wasmbeam.Test.HostileNifArgs do
  @moduledoc false
  # Calls every NIF of `Wasmbeam.Native` with hostile arguments, for the
  # test that no NIF raises (test/wasmbeam/no_nif_raises_test.exs).
  #
  # Each NIF gets one or more lists of plausible arguments (real resources
  # of the right kinds, valid options); then, one position at a time, the
  # argument there is replaced by every generic hostile value and by the
  # hostile values specific to that position (nested import tuples,
  # option maps with extreme numbers, caller operations). Sizes are
  # hostile (2^64, -1, 70,000 pages, 2^32 elements) but guarded by store
  # limits or bounds checks, so no call may legitimately run for long or
  # allocate more than a few MiB.

  import Bitwise

  alias Wasmbeam.{Driver, Engine, Instance, LinkedModule, Module, Native, Store}

  @u64_max (1 <<< 64) - 1

  @plain_wat ~S[(module
    (memory (export "memory") 1 2)
    (table (export "table") 2 funcref)
    (global (export "g") (mut i32) (i32.const 0))
    (global (export "k") i64 (i64.const 7))
    (func (export "nop"))
    (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
    (func (export "v") (param v128) (result v128) local.get 0))]

  @imports_wat ~S[(module
    (import "env" "f" (func $f (param i32) (result i32)))
    (import "env" "m" (memory 1))
    (import "env" "t" (table 1 funcref))
    (import "env" "g" (global i32))
    (func (export "call_f") (param i32) (result i32) local.get 0 call $f))]

  # A host function whose handler runs the caller operations it is given
  # (see `run_inside_host_call/1`).
  @caller_wat ~S[(module
    (import "env" "h" (func $h (result i32)))
    (memory (export "memory") 1 1)
    (global (export "g") (mut i32) (i32.const 0))
    (global (export "k") i64 (i64.const 7))
    (func (export "nop"))
    (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
    (func (export "run") (result i32) call $h))]

  @doc "The resources the calls use; `dir` is a scratch directory for cache files."
  def fixtures(dir) do
    engine = Engine.default()
    fuel_engine = Engine.new!(consume_fuel: true)
    plain = Module.compile!(engine, @plain_wat)
    with_imports = Module.compile!(engine, @imports_wat)
    instance = Instance.new!(plain)
    fuel_instance = Instance.new!(Module.compile!(fuel_engine, @plain_wat), %{}, fuel: 1_000)

    # A store whose limits refuse what hostile sizes ask for.
    limited = fn -> Store.new!(engine, memory_size: 4 * 65_536, table_elements: 1_000).ref end

    {:ok, func} = Instance.func(instance, "nop")
    {:ok, add} = Instance.func(instance, "add")
    {:ok, memory} = Instance.memory(instance, "memory")
    {:ok, global} = Instance.global(instance, "g")
    {:ok, const_global} = Instance.global(instance, "k")
    {:ok, table} = Instance.table(instance, "table")

    handler = {"env.f", {:local, fn _caller, x -> x end}, 1}

    link_module =
      Module.compile!(engine, ~S[(module (import "env" "f" (func (param i32) (result i32))))])

    linked = LinkedModule.new!(link_module, %{"env" => %{"f" => fn_import()}})
    {:ok, call_options} = Wasmbeam.CallOptions.to_native([])
    {:ok, {wasi, _stdin, _stdout, _stderr}} = Wasmbeam.Wasi.Options.to_native([])
    {:ok, config} = Wasmbeam.Engine.Config.new([])
    {:ok, key_entry} = Native.module_cache_entry(engine.ref, "(module)") |> entry_of()

    %{
      engine: engine.ref,
      fuel_engine: fuel_engine.ref,
      config: Wasmbeam.Engine.Config.to_native(config),
      module: plain.ref,
      imports_module: with_imports.ref,
      instance: instance.ref,
      store: instance.store.ref,
      fuel_store: fuel_instance.store.ref,
      limited_store: limited,
      func: func.ref,
      add: add.ref,
      memory: memory.ref,
      global: global.ref,
      const_global: const_global.ref,
      table: table.ref,
      pipe: Native.wasi_pipe_new(),
      linked: linked.ref,
      link_module: link_module.ref,
      handler: handler,
      call_options: call_options,
      store_options: Map.new(Store.limit_keys(), &{&1, nil}),
      wasi: wasi,
      key: :binary.copy(<<7>>, 32),
      entry: key_entry,
      path: Path.join(dir, "entry.cwasm"),
      dir: dir,
      caller_module: Module.compile!(engine, @caller_wat)
    }
  end

  defp fn_import, do: {:fn, [:i32], [:i32], fn _caller, x -> x end}

  # The entry id of a cache file (a string; a tuple around it is accepted).
  defp entry_of(entry) when is_binary(entry), do: {:ok, entry}
  defp entry_of({:ok, entry}) when is_binary(entry), do: {:ok, entry}

  @doc "Stands for a new store with limits (see `fixtures/1`) in the arguments of a call."
  def fresh_store, do: :"$wasmbeam_test_fresh_store"

  @doc "Hostile values for any position."
  def generic(fx) do
    deep = Enum.reduce(1..10_000, :bottom, fn _, acc -> {acc} end)
    deep_list = Enum.reduce(1..10_000, [], fn _, acc -> [acc] end)

    [
      1 <<< 64,
      @u64_max,
      1 <<< 63,
      1 <<< 128,
      -1,
      -(1 <<< 63) - 1,
      70_000,
      65_537,
      1 <<< 32,
      (1 <<< 32) - 1,
      0,
      1.0e308,
      -0.0,
      "",
      "\0",
      :binary.copy(<<0xFF>>, 4 * 1024 * 1024),
      <<1::7>>,
      :atom,
      nil,
      true,
      [],
      [1 | 2],
      List.duplicate(1 <<< 64, 3),
      {},
      {:x, 1 <<< 64},
      {:memory_read, "memory", @u64_max, @u64_max},
      deep,
      deep_list,
      %{},
      %{timeout: @u64_max, fuel: @u64_max, wait: :maybe},
      self(),
      make_ref(),
      fn -> :ok end,
      # resources of the wrong kind (each is the right kind somewhere)
      fx.engine,
      fx.module,
      fx.store,
      fx.instance,
      fx.func,
      fx.memory,
      fx.global,
      fx.table,
      fx.pipe,
      fx.linked
    ]
  end

  @doc "Hostile import lists, for `instance_new/4` and `linked_new/2`."
  def import_lists(fx) do
    handler = fx.handler

    [
      [{:define_memory, 70_000, nil}],
      [{:define_memory, 1, 70_000}],
      [{:define_memory, 65_537, 65_537}],
      [{:define_memory, (1 <<< 32) - 1, nil}],
      [{:define_memory, 1 <<< 32, nil}],
      [{:define_memory, 2, 1}],
      [{:define_memory, -1, nil}],
      [{:define_table, :funcref, (1 <<< 32) - 1, nil}],
      [{:define_table, :funcref, 70_000, 10}],
      [{:define_table, :externref, 1, (1 <<< 32) - 1}],
      [{:define_table, :i32, 1, nil}],
      [{:define_table, :anyref, 1, nil}],
      [{:define_global, :i32, true, 1 <<< 64}],
      [{:define_global, :i64, false, -(1 <<< 63) - 1}],
      [{:define_global, :f32, false, 1.0e308}],
      [{:define_global, :v128, false, 1 <<< 128}],
      [{:define_global, :v128, false, -1}],
      [{:define_global, :funcref, false, fx.func}],
      [{:define_global, :funcref, false, 1}],
      [{:define_global, :externref, false, {:deep, [1, 2]}}],
      [{:define_global, :bogus, false, 1}],
      [{:define_func, "env.f", [:i32], [:i32], :not_a_handler}],
      [{:define_func, "env.f", List.duplicate(:i32, 10_000), [], handler}],
      [{:define_func, "env.f", [:bogus], [], handler}],
      [{:define_func, :not_a_name, [:i32], [:i32], handler}],
      [{:wasi, "wasi_snapshot_preview1", "no_such_function"}],
      [{:wasi, "nope", "nope"}],
      [{:func, fx.memory}],
      [{:memory, fx.func}],
      [{:global, fx.table}],
      [{:table, fx.global}],
      [{:tag, fx.engine}],
      List.duplicate({:define_memory, 1, nil}, 10),
      [
        {:define_func, "env.f", [:i32], [:i32], handler},
        {:define_memory, 1, nil},
        {:define_table, :funcref, 1, nil},
        {:define_global, :i64, false, 1}
      ]
    ]
  end

  @doc "Hostile call options (the map `Wasmbeam.CallOptions.to_native/1` makes)."
  def call_options do
    [
      %{timeout: @u64_max, fuel: nil, wait: true},
      %{timeout: 1 <<< 63, fuel: nil, wait: true},
      %{timeout: nil, fuel: @u64_max, wait: true},
      %{timeout: 0, fuel: 0, wait: false},
      %{timeout: -1, fuel: nil, wait: true},
      %{timeout: nil, fuel: nil, wait: :maybe},
      %{timeout: nil, fuel: nil}
    ]
  end

  @doc "Hostile store options."
  def store_options do
    all = fn n ->
      Map.new([:memory_size, :table_elements, :instances, :tables, :memories], &{&1, n})
    end

    [
      Map.put(all.(@u64_max), :fuel, @u64_max),
      Map.put(all.(0), :fuel, 0),
      Map.put(all.(1 <<< 64), :fuel, nil),
      Map.put(all.(-1), :fuel, nil)
    ]
  end

  @doc "Hostile engine configurations (valid defaults with one field changed)."
  def engine_configs(fx) do
    base = fx.config

    [
      %{base | max_wasm_stack: @u64_max},
      %{base | max_wasm_stack: 0},
      %{base | async_stack_size: 0},
      %{base | async_stack_size: @u64_max},
      %{base | async_stack_size: 1 <<< 40, max_wasm_stack: 1 <<< 39},
      %{base | strategy: :bogus},
      %{base | opt_level: :bogus},
      %{base | memory64: true, threads: true, gc: true, function_references: true},
      %{base | pooling: %{pooling() | total_instances: (1 <<< 32) - 1}},
      %{base | pooling: %{pooling() | max_memory_size: @u64_max}},
      %{base | pooling: %{pooling() | max_memory_size: 0}},
      %{base | pooling: %{pooling() | total_stacks: 0}},
      %{base | pooling: %{pooling() | total_memories: (1 <<< 32) - 1}},
      %{base | pooling: :yes},
      Map.delete(base, :strategy)
    ]
  end

  defp pooling do
    %{
      total_instances: 2,
      total_memories: 2,
      total_tables: 2,
      total_stacks: 2,
      max_memory_size: 65_536
    }
  end

  @doc "Hostile WASI options and stdio, for `store_set_wasi/5`."
  def wasi_options(fx) do
    base = fx.wasi

    [
      %{base | args: ["a\0b", <<0xFF, 0xFE>>]},
      %{base | env: [{"A=B", "c"}, {"\0", "\0"}, {"", ""}]},
      %{base | preopens: [{"/definitely/not/here", "/x", true}]},
      %{base | preopens: [{fx.dir, "\0", false}, {fx.dir, "", true}]},
      %{base | random_seed: @u64_max, deterministic: true},
      %{base | random_seed: -1},
      %{base | args: List.duplicate("x", 100_000)}
    ]
  end

  def sinks do
    [
      {:capture, @u64_max},
      {:capture, 0},
      {:capture, -1},
      {:stream, self(), {:deep, [1, 2, 3]}},
      {:stream, :not_a_pid, 1},
      {:stream, self()},
      {:stream, self(), 1, -1},
      {:stream, self(), 1, :infinity},
      {:stream, self(), 1, @u64_max},
      {:stream, self(), 1, :nope},
      :capture
    ]
  end

  @doc "Caller operations to run from inside a host call."
  def caller_ops do
    [
      {:memory_read, "memory", @u64_max, @u64_max},
      {:memory_read, "memory", 0, 1 <<< 32},
      {:memory_read, "memory", 65_536, 1},
      {:memory_read, "memory", 1 <<< 64, 0},
      {:memory_read, "nope", 0, 1},
      {:memory_read, "g", 0, 1},
      {:memory_write, "memory", @u64_max, "x"},
      {:memory_write, "memory", 65_535, "xy"},
      {:memory_write, "memory", 0, 12},
      {:memory_size, "memory"},
      {:memory_size, :memory},
      {:global_get, "g"},
      {:global_get, "memory"},
      {:global_get, 1},
      {:global_set, "g", 1 <<< 64},
      {:global_set, "g", -(1 <<< 63)},
      {:global_set, "g", :x},
      {:global_set, "k", 1},
      {:global_set, "nope", 1},
      {:fuel},
      {:fuel, 1},
      {:call, "add", [1 <<< 64, -1]},
      {:call, "add", [1]},
      {:call, "add", :not_a_list},
      {:call, "nope", []},
      {:call, "memory", []},
      {:call, :add, [1, 2]},
      {:bogus},
      {},
      5,
      "memory_read",
      [:memory_read, "memory", 0, 1]
    ]
  end

  @doc """
  Every `{function, args}` to try, for the functions `functions` (the
  NIFs' names and arities). A function this module does not know gets
  only generic hostile values in every position.
  """
  def calls(fx, functions) do
    generic = generic(fx)

    Enum.flat_map(functions, fn {name, arity} ->
      for base <- bases(name, arity, fx),
          position <- 0..(arity - 1)//1,
          value <- generic ++ special(name, position, fx) do
        {name, List.replace_at(base, position, value)}
      end ++ Enum.map(bases(name, arity, fx), &{name, &1})
    end)
  end

  # Plausible arguments for each NIF.
  defp bases(name, arity, fx) do
    # Made afresh for each call (see `run/2`): a store gets one WASI
    # context, and instantiations fill it.
    store = fresh_store()

    case {name, arity} do
      {:engine_new, 1} ->
        [[fx.config]]

      {:engine_compatibility_hash, 1} ->
        [[fx.engine]]

      {:engine_ticker_realtime, 1} ->
        [[fx.engine]]

      {:module_compile, 2} ->
        [[fx.engine, "(module)"]]

      {:module_validate, 2} ->
        [[fx.engine, "(module)"]]

      {:module_name, 1} ->
        [[fx.module]]

      {:module_imports, 1} ->
        [[fx.imports_module]]

      {:module_exports, 1} ->
        [[fx.module]]

      {:module_serialize, 2} ->
        [[fx.module, nil], [fx.module, :binary.copy(<<1>>, 32)]]

      {:module_deserialize, 3} ->
        [[fx.engine, "not a serialized module", :binary.copy(<<1>>, 32)]]

      {:module_compile_start, 2} ->
        [[fx.engine, "(module)"]]

      {:module_deserialize_unsafe, 2} ->
        [[fx.engine, "not a serialized module"]]

      {:store_new, 2} ->
        [[fx.engine, fx.store_options], [fx.fuel_engine, fx.store_options]]

      {:store_resume, 1} ->
        [[fx.store]]

      {:store_fuel, 1} ->
        [[fx.fuel_store]]

      {:store_usable, 1} ->
        [[fx.store]]

      {:store_set_fuel, 2} ->
        [[fx.fuel_store, 1_000]]

      {:store_fuel_consumed, 1} ->
        [[fx.fuel_store]]

      {:store_answer, 3} ->
        [[fx.store, 1, {:ok, []}]]

      {:store_answer_dirty, 3} ->
        [[fx.store, 1, {:ok, []}]]

      {:store_io_timeout, 1} ->
        [[fx.store]]

      {:store_set_wasi, 5} ->
        [[store, fx.wasi, nil, :discard, :discard]]

      {:store_wasi_output, 1} ->
        [[fx.store]]

      {:caller_op, 3} ->
        [[fx.store, 1, {:fuel}]]

      {:host_handlers, 2} ->
        [[fx.store, 1]]

      {:instance_new, 4} ->
        [[store, fx.module, [], fx.call_options]]

      {:linked_new, 2} ->
        [[fx.link_module, [{:define_func, "env.f", [:i32], [:i32], fx.handler}]]]

      {:linked_instantiate, 3} ->
        [[store, fx.linked, fx.call_options]]

      {:instance_call, 5} ->
        [[fx.instance, fx.store, "nop", [], fx.call_options]]

      {:instance_export, 2} ->
        [[fx.instance, "memory"]]

      {:instance_exports, 1} ->
        [[fx.instance]]

      {:func_call, 4} ->
        [[fx.add, fx.store, [1, 2], fx.call_options]]

      {:memory_size, 1} ->
        [[fx.memory]]

      {:memory_grow, 2} ->
        [[fx.memory, 0]]

      {:memory_read, 3} ->
        [[fx.memory, 0, 16]]

      {:memory_read_large, 3} ->
        [[fx.memory, 0, 16]]

      {:memory_write, 3} ->
        [[fx.memory, 0, "x"]]

      {:memory_write_large, 3} ->
        [[fx.memory, 0, "x"]]

      {:global_get, 1} ->
        [[fx.global]]

      {:global_set, 2} ->
        [[fx.global, 1], [fx.const_global, 1]]

      {:table_size, 1} ->
        [[fx.table]]

      {:table_get, 2} ->
        [[fx.table, 0]]

      {:wasi_pipe_new, 0} ->
        [[]]

      {:wasi_pipe_write, 2} ->
        [[Native.wasi_pipe_new(), "x"]]

      {:wasi_pipe_close, 1} ->
        [[Native.wasi_pipe_new()]]

      {:store_cancel, 1} ->
        [[fx.store]]

      {:module_cache_entry, 2} ->
        [[fx.engine, "(module)"]]

      {:module_cache_entry_small, 2} ->
        [[fx.engine, "(module)"]]

      {:module_cache_write, 4} ->
        [[fx.module, fx.key, fx.entry, fx.path]]

      {:module_cache_load, 4} ->
        [[fx.engine, fx.key, fx.entry, fx.path]]

      _ ->
        [List.duplicate(nil, arity)]
    end
  end

  # Hostile values that only make sense in one position.
  defp special(:engine_new, 0, fx), do: engine_configs(fx)
  defp special(:store_new, 1, _fx), do: store_options()
  defp special(:instance_new, 2, fx), do: import_lists(fx)
  defp special(:linked_new, 1, fx), do: import_lists(fx)

  defp special(name, position, _fx)
       when {name, position} in [
              {:instance_new, 3},
              {:linked_instantiate, 2},
              {:instance_call, 4},
              {:func_call, 3}
            ],
       do: call_options()

  defp special(:store_set_wasi, 1, fx), do: wasi_options(fx)
  defp special(:store_set_wasi, 2, fx), do: [fx.pipe, :binary.copy("x", 1_000_000)]
  defp special(:store_set_wasi, p, _fx) when p in [3, 4], do: sinks()
  defp special(:caller_op, 2, _fx), do: caller_ops()

  defp special(name, 2, _fx) when name in [:store_answer, :store_answer_dirty],
    do: [{:ok, [1 <<< 64]}, {:error, :x}, {:ok, :x}]

  defp special(:instance_call, 2, _fx),
    do: ["add", "v", "memory", "nope", <<0xFF>>, String.duplicate("n", 100_000)]

  defp special(:instance_call, 3, _fx),
    do: [[1 <<< 64, 1], [1, 2, 3], [:x, 1], [1.5, 2]]

  defp special(:func_call, 2, _fx), do: [[1 <<< 64, 1], [1], [-(1 <<< 31) - 1, 0]]
  defp special(:module_compile, 1, _fx), do: compile_sources()
  defp special(:module_validate, 1, _fx), do: compile_sources()

  defp special(name, 3, fx) when name in [:module_cache_write, :module_cache_load],
    do: [fx.dir, Path.join(fx.dir, "a\0b"), Path.join(fx.dir, "no/such/dir/x")]

  defp special(_name, _position, _fx), do: []

  defp compile_sources do
    [
      "(module (memory 70000))",
      "(module (table 4294967295 funcref))",
      "(module (memory i64 1))",
      String.duplicate("(", 100_000),
      <<0, "asm", 1, 0, 0, 0>>,
      <<0, "asm", 1, 0, 0, 0, 5, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F>>
    ]
  end

  @doc """
  Makes one call and returns `:ok`, or `{:raised, kind, reason}` when it
  raised. A call that started guest code is driven to its end.
  """
  def run({name, args}, fx) do
    args =
      Enum.map(args, fn arg -> if arg == fresh_store(), do: fx.limited_store.(), else: arg end)

    result = apply(Native, name, args)
    settle(result, run_store(name, args, fx))
    :ok
  rescue
    e -> {:raised, :error, original(e)}
  catch
    kind, reason -> {:raised, kind, reason}
  end

  # A started run must not be left pending: drive it as `Wasmbeam.Driver`
  # would (the guest functions here return at once).
  defp settle(step, store)
       when is_reference(store) and
              (step == :continue or elem(step, 0) in [:host_call, :io_wait]),
       do: Driver.finish(step, store)

  defp settle({:wait, id}, _store) do
    receive do
      {:wasmbeam_store_idle, ^id} -> :ok
    after
      1_000 -> :ok
    end
  end

  defp settle(_result, _store), do: :ok

  # The store a NIF that runs guest code runs it on.
  defp run_store(name, _args, fx) when name in [:instance_call, :func_call], do: fx.store

  defp run_store(name, [store | _], _fx) when name in [:instance_new, :linked_instantiate],
    do: store

  defp run_store(_name, _args, _fx), do: nil

  @doc """
  Calls `caller_op/3` with every hostile operation and `host_handlers/2`
  with hostile ids, from inside a host call, where both have a pending
  call to act on. Returns `[{call, outcome}]` for the calls that raised.
  """
  def run_inside_host_call(fx) do
    test = self()

    handler = fn caller ->
      ops = for op <- caller_ops() ++ generic(fx), do: {:caller_op, [caller.store, caller.id, op]}

      ids =
        for id <- [0, caller.id + 1, @u64_max, 1 <<< 64, -1, :x],
            do: {:host_handlers, [caller.store, id]}

      raised = for call <- ops ++ ids, (outcome = run_step(call)) != :ok, do: {call, outcome}
      send(test, {:raised_inside, raised})
      0
    end

    instance = Instance.new!(fx.caller_module, %{"env" => %{"h" => {:fn, [], [:i32], handler}}})
    result = Instance.call(instance, "run", [])

    receive do
      {:raised_inside, raised} -> raised
    after
      0 ->
        [
          {{:instance_call, [instance.ref, instance.store.ref, "run", []]},
           {:handler_did_not_finish, result}}
        ]
    end
  end

  @doc """
  Answers host calls with hostile results (they reach `store_answer/3`
  through the driver). Returns `[{results, outcome}]` for those that raised.
  """
  def answer_with_hostile_results(fx) do
    handler = fn _caller -> Process.get(:hostile_result) end
    instance = Instance.new!(fx.caller_module, %{"env" => %{"h" => {:fn, [], [:i32], handler}}})

    for results <-
          [[1 <<< 64], [-(1 <<< 31) - 1], [1.5], [:x], ["s"], [nil], [[1]], [1, 2]] ++
            [{:x}, :x, [1 | 2]],
        (outcome = answer(instance, results)) != :ok,
        do: {results, outcome}
  end

  defp answer(instance, results) do
    Process.put(:hostile_result, results)
    Instance.call(instance, "run", [])
    :ok
  rescue
    e -> {:raised, :error, original(e)}
  catch
    kind, reason -> {:raised, kind, reason}
  end

  # A NIF that may answer with a step of a run (a caller's nested call).
  defp run_step({:caller_op, [store, id, op]}) do
    store |> Native.caller_op(id, op) |> Driver.finish(store)
    :ok
  rescue
    e -> {:raised, :error, original(e)}
  catch
    kind, reason -> {:raised, kind, reason}
  end

  defp run_step({name, args}) do
    apply(Native, name, args)
    :ok
  rescue
    e -> {:raised, :error, original(e)}
  catch
    kind, reason -> {:raised, kind, reason}
  end

  defp original(%ErlangError{original: original}), do: original
  defp original(exception), do: exception
end
