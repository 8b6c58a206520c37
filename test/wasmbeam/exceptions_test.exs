defmodule Wasmbeam.ExceptionsTest do
  # Wasm exception handling is on by default, as in Wasmtime 48: modules
  # that clang emits for C++ exceptions or setjmp/longjmp load and run.
  use ExUnit.Case, async: true

  alias Wasmbeam.{Engine, Error, Instance, Module}

  @wat File.read!(Path.expand("../fixtures/exceptions.wat", __DIR__))

  test "a module that throws and catches runs on the default engine" do
    instance = Instance.new!(Module.compile!(@wat))
    assert {:ok, [42]} = Instance.call(instance, "catch", [41])
  end

  test "an exception that escapes the guest is a trap, and the instance stays usable" do
    instance = Instance.new!(Module.compile!(@wat))

    assert {:error, %Error{kind: :trap, message: message}} =
             Instance.call(instance, "escape", [7])

    assert message =~ "exception"
    assert {:ok, [8]} = Instance.call(instance, "catch", [7])
  end

  test "an engine with exceptions off refuses the module" do
    engine = Engine.new!(features: [exceptions: false])
    assert {:error, %Error{kind: :validation}} = Module.compile(engine, @wat)
  end
end
