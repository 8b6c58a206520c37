defmodule Wasmbeam.Component.WaveTest do
  use ExUnit.Case, async: true

  alias Wasmbeam.{Component, Error}
  alias Wasmbeam.Component.{Instance, Wave}

  doctest Wasmbeam.Component.Wave

  @echo "wasmbeam:test/echo@0.1.0"
  @compute "wasmbeam:test/compute@0.1.0"

  setup_all do
    {:ok, component: Component.compile_file!(Wasmbeam.ComponentFixtures.path!("types"))}
  end

  # The host side answers what it was given; the calls below go to the
  # guest's `echo` interface, which passes each value through the host.
  setup ctx do
    imports = Wasmbeam.ComponentFixtures.types_imports(self())
    {:ok, instance: Instance.new!(ctx.component, imports)}
  end

  defp wave(ctx, call), do: Wave.call(ctx.instance, call)

  test "values of every kind go in and come back out as WAVE", ctx do
    cases = [
      {"echo-u32(4294967295)", "4294967295"},
      {"echo-s64(-9223372036854775808)", "-9223372036854775808"},
      {"echo-f64(2.5)", "2.5"},
      {"echo-f64(-inf)", "-inf"},
      {"echo-char('ü')", "'ü'"},
      {~S[echo-string("quote \" and \u{1F600}")], ~S["quote \" and 😀"]},
      {"echo-bytes([1, 2, 255])", "[1, 2, 255]"},
      {"echo-strings([])", "[]"},
      {~S[echo-tuple((7, "x", true))], ~S[(7, "x", true)]},
      {~S[echo-point({x-coord: 1, y-coord: -2, label: "a"})],
       ~S[{x-coord: 1, y-coord: -2, label: "a"}]},
      {"echo-color(dark-magenta)", "dark-magenta"},
      {"echo-shape(circle(1.5))", "circle(1.5)"},
      {"echo-shape(empty)", "empty"},
      {"echo-permissions({read, execute})", "{read, execute}"},
      {"echo-permissions({})", "{}"},
      {"echo-option(some(3))", "some(3)"},
      {"echo-option(none)", "none"},
      {~S[echo-nested-option(some(none))], "some(none)"},
      {"echo-result(ok(1))", "ok(1)"},
      {~S[echo-result(err("no"))], ~S[err("no")]},
      {"echo-result-empty(ok)", "ok"}
    ]

    for {call, expected} <- cases do
      assert {:ok, ^expected} = wave(ctx, "#{@echo}##{call}"), call
    end
  end

  test "a guest function, by interface and name; no parentheses for no arguments", ctx do
    assert {:ok, "5"} = wave(ctx, "#{@compute}#add(2, 3)")
    assert {:ok, ~S["ab"]} = wave(ctx, ~s[#{@compute}#concat("a", "b")])
    assert {:ok, nil} = wave(ctx, "#{@echo}#nothing")
    assert {:ok, ~S["Hello, world!"]} = wave(ctx, ~S[hello("world")])
  end

  test "bad calls are errors that say what is wrong, and the instance goes on", ctx do
    assert {:error, %Error{kind: :argument, message: m1}} = wave(ctx, "#{@compute}#add(2, ")
    assert m1 =~ "WAVE"
    assert {:error, %Error{kind: :type, message: m2}} = wave(ctx, ~s[#{@compute}#add(2, "x")])
    assert m2 =~ "add"
    assert {:error, %Error{kind: :type}} = wave(ctx, "#{@compute}#add(2)")
    assert {:error, %Error{kind: :type}} = wave(ctx, "#{@compute}#add(2, 3, 4)")
    assert {:error, %Error{kind: :type}} = wave(ctx, "#{@echo}#echo-u32(-1)")
    assert {:error, %Error{kind: :type}} = wave(ctx, "#{@echo}#echo-color(purple)")
    assert {:error, %Error{kind: :not_found}} = wave(ctx, "#{@compute}#nope()")
    assert {:error, %Error{kind: :not_found}} = wave(ctx, "no:such/iface#add(1, 2)")
    assert {:error, %Error{kind: :argument}} = wave(ctx, <<"add(", 255, ")">>)
    assert {:error, %Error{kind: :argument}} = Wave.call(ctx.instance, :add)
    assert {:error, %Error{kind: :argument}} = Wave.call(:not_an_instance, "add(1, 2)")
    assert {:ok, "5"} = wave(ctx, "#{@compute}#add(2, 3)")
  end

  test "messages about huge texts stay short", ctx do
    label = String.duplicate("x", 1_000_000)

    for text <- [
          "#{@compute}#add({#{label}: 1, #{label}: 2}, 1)",
          label <> "(1, 2)",
          "#{@compute}#add(\"#{label}\", 1)"
        ] do
      assert {:error, %Error{message: message}} = wave(ctx, text)
      assert byte_size(message) < 1_000, "#{byte_size(message)} bytes"
    end

    assert {:error, %Error{kind: :argument}} = Wave.parse_call(ctx.instance, :add)
    assert {:error, %Error{kind: :argument}} = Wave.format(ctx.instance, nil, :add, 1)
    assert {:error, %Error{kind: :argument}} = Wave.format(:nope, nil, "add", 1)
  end

  test "a deep or huge WAVE text is refused or read without harm", ctx do
    deep = String.duplicate("some(", 10_000) <> "1" <> String.duplicate(")", 10_000)
    assert {:error, %Error{}} = wave(ctx, "#{@echo}#echo-option(#{deep})")

    big =
      "[" <> Enum.map_join(1..100_000, ", ", fn i -> Integer.to_string(rem(i, 256)) end) <> "]"

    assert {:ok, out} = wave(ctx, "#{@echo}#echo-bytes(#{big})")
    assert out == big
  end
end
