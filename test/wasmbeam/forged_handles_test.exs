defmodule Wasmbeam.ForgedHandlesTest do
  # Regression (issue #15): a handle whose reference Wasmbeam did not make
  # (forged, or kept from an earlier run of the VM) raised
  # `ArgumentError "argument error"` from the NIF's argument decoding. Each
  # function now answers a clear `:argument` error.
  use ExUnit.Case, async: true

  alias Wasmbeam.{Engine, Error, Func, Global, Instance, Memory, Module, Store, Table}

  @wat ~S[(module
    (memory (export "memory") 1)
    (global (export "g") (mut i32) (i32.const 1))
    (table (export "t") 1 funcref)
    (func (export "f") (param i32) (result i32) local.get 0))]

  setup do
    instance = Instance.new!(Module.compile!(@wat))
    {:ok, func} = Instance.func(instance, "f")
    {:ok, memory} = Instance.export(instance, "memory")
    {:ok, global} = Instance.export(instance, "g")
    {:ok, table} = Instance.export(instance, "t")
    %{instance: instance, func: func, memory: memory, global: global, table: table}
  end

  defp forged(handle), do: %{handle | ref: make_ref()}

  test "every kind of forged handle is an :argument error, not an exception", ctx do
    module = Module.compile!(@wat)
    engine = %{Engine.default() | ref: make_ref()}
    store = Store.new!()

    results = [
      Instance.call(forged(ctx.instance), "f", [1]),
      Instance.export(forged(ctx.instance), "f"),
      Func.call(forged(ctx.func), [1]),
      Memory.read(forged(ctx.memory), 0, 1),
      Memory.size(forged(ctx.memory)),
      Global.get(forged(ctx.global)),
      Table.size(forged(ctx.table)),
      Instance.new(forged(module)),
      Instance.new(module, %{}, store: forged(store)),
      Store.fuel(forged(store)),
      Module.compile(engine, "(module)"),
      Module.serialize(forged(module))
    ]

    for result <- results do
      assert {:error, %Error{kind: :argument, message: message}} = result
      assert message =~ "not a live"
    end

    # Functions that answer a plain value raise the same clear error.
    for fun <- [
          fn -> Module.name(forged(module)) end,
          fn -> Module.exports(forged(module)) end,
          fn -> Engine.compatibility_hash(engine) end,
          fn -> Engine.ticker_realtime?(engine) end
        ] do
      assert %Error{kind: :argument, message: "not a live" <> _} = catch_error(fun.())
    end

    assert {:error, %Error{kind: :argument}} =
             Wasmbeam.Wasi.Pipe.close(%Wasmbeam.Wasi.Pipe{ref: make_ref()})

    # The real handles still work.
    assert {:ok, [5]} = Instance.call(ctx.instance, "f", [5])
  end
end
