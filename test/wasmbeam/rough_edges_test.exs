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
