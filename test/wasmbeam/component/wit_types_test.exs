defmodule Wasmbeam.Component.WitTypesTest do
  # Every WIT type both ways, through a C guest built with wit-bindgen:
  # the test calls echo.<f>(x), the guest calls the host's host.<f>(x) with
  # the same value and returns the host's answer. So each value is decoded
  # from Elixir, encoded to the host handler, decoded from its answer and
  # encoded again as the result.
  use ExUnit.Case, async: true

  import Bitwise

  alias Wasmbeam.{Component, Error}
  alias Wasmbeam.Component.Instance, as: CI

  @echo "wasmbeam:test/echo@0.1.0"
  @host "wasmbeam:test/host@0.1.0"
  @compute "wasmbeam:test/compute@0.1.0"

  setup_all do
    component = Component.compile_file!(Wasmbeam.ComponentFixtures.path!("types"))
    {:ok, component: component}
  end

  setup ctx do
    {:ok, instance: CI.new!(ctx.component, Wasmbeam.ComponentFixtures.types_imports(self()))}
  end

  defp round_trip(instance, name, value) do
    result = CI.call(instance, {@echo, name}, [value])
    assert_received {:host_saw, ^name, seen}
    {result, seen}
  end

  defp assert_round_trip(instance, name, value) do
    assert {{:ok, out}, seen} = round_trip(instance, name, value)
    assert seen === value, "#{name}: the host saw #{inspect(seen)}"
    assert out === value, "#{name}: came back as #{inspect(out)}"
  end

  test "the component's WIT, as exports/1 and imports/1 print it", ctx do
    exports = Component.exports(ctx.component)
    assert {"hello", {:func, "func(name: string) -> string"}} in exports
    {@echo, {:interface, echo}} = List.keyfind(exports, @echo, 0)

    assert {"echo-point",
            {:func,
             "func(x: record { x-coord: s32, y-coord: s32, label: string }) -> record { x-coord: s32, y-coord: s32, label: string }"}} in echo

    assert {"echo-result-err-only", {:func, "func(x: result<_, string>) -> result<_, string>"}} in echo
    assert {"greeting", {:func, "func() -> string"}} in Component.imports(ctx.component)
  end

  test "integers at their edges, and out of range", %{instance: i} do
    for {name, lo, hi} <- [
          {"echo-s8", -128, 127},
          {"echo-u8", 0, 255},
          {"echo-s16", -32_768, 32_767},
          {"echo-u16", 0, 65_535},
          {"echo-s32", -(1 <<< 31), (1 <<< 31) - 1},
          {"echo-u32", 0, (1 <<< 32) - 1},
          {"echo-s64", -(1 <<< 63), (1 <<< 63) - 1},
          {"echo-u64", 0, (1 <<< 64) - 1}
        ] do
      for v <- [lo, hi, 0, 1] |> Enum.uniq(), do: assert_round_trip(i, name, v)

      for bad <- [lo - 1, hi + 1] do
        assert {:error, %Error{kind: :type, message: msg}} = CI.call(i, {@echo, name}, [bad])
        assert msg =~ "argument 1 (x) is out of range for #{String.trim_leading(name, "echo-")}"
      end
    end

    assert {:error, %Error{kind: :type, message: msg}} =
             CI.call(i, {@echo, "echo-u64"}, [1 <<< 100])

    assert msg =~ "out of range"
  end

  test "bools, floats exactly as core values, chars", %{instance: i} do
    assert_round_trip(i, "echo-bool", true)
    assert_round_trip(i, "echo-bool", false)
    assert {:error, %Error{kind: :type}} = CI.call(i, {@echo, "echo-bool"}, [1])

    for v <- [1.5, -0.0, 1.0e300, :infinity, :neg_infinity],
        do: assert_round_trip(i, "echo-f64", v)

    for v <- [0.25, :infinity], do: assert_round_trip(i, "echo-f32", v)
    # The component model canonicalises NaNs.
    assert {{:ok, :nan}, _} = round_trip(i, "echo-f64", :nan)
    assert {{:ok, 3.0}, 3.0} = round_trip(i, "echo-f64", 3)

    for c <- ["a", "é", "😀"], do: assert_round_trip(i, "echo-char", c)
    assert {{:ok, "a"}, "a"} = round_trip(i, "echo-char", ?a)
    assert {:error, %Error{kind: :type}} = CI.call(i, {@echo, "echo-char"}, ["ab"])
    assert {:error, %Error{kind: :type}} = CI.call(i, {@echo, "echo-char"}, [0xD800])
  end

  test "strings, bytes and lists", %{instance: i} do
    for s <- ["", "hello", "héllo wörld 😀", String.duplicate("x", 100_000)],
        do: assert_round_trip(i, "echo-string", s)

    assert {:error, %Error{kind: :type, message: msg}} =
             CI.call(i, {@echo, "echo-string"}, [<<0xC3>>])

    assert msg =~ "UTF-8"

    for b <- [<<>>, <<0, 255, 1>>, :crypto.strong_rand_bytes(70_000)],
        do: assert_round_trip(i, "echo-bytes", b)

    assert_round_trip(i, "echo-strings", [])
    assert_round_trip(i, "echo-strings", ["a", "", "ü"])
    assert_round_trip(i, "echo-nested-list", [[], [1, 2], [4_294_967_295]])

    assert {:error, %Error{kind: :type, message: msg}} =
             CI.call(i, {@echo, "echo-nested-list"}, [[[1], [2, -1]]])

    assert msg == "argument 1 (x).1.1 is out of range for u32: -1"
  end

  test "tuples, records, enums, variants, flags", %{instance: i} do
    assert_round_trip(i, "echo-tuple", {7, "seven", true})
    assert {:error, %Error{kind: :type}} = CI.call(i, {@echo, "echo-tuple"}, [{7, "seven"}])

    p = %{x_coord: -3, y_coord: 4, label: "p"}
    assert_round_trip(i, "echo-point", p)

    segment = %{
      start: p,
      end: %{p | label: "q"},
      color: :dark_magenta,
      waypoints: [p, %{x_coord: 0, y_coord: 0, label: ""}]
    }

    assert_round_trip(i, "echo-segment", segment)

    assert {:error, %Error{kind: :type, message: msg}} =
             CI.call(i, {@echo, "echo-segment"}, [%{segment | color: :pink}])

    assert msg =~ "argument 1 (x).color must be enum { red, green, blue, dark-magenta }"

    assert {:error, %Error{kind: :type, message: msg}} =
             CI.call(i, {@echo, "echo-segment"}, [
               put_in(segment.waypoints, [%{p | x_coord: 1 <<< 40}])
             ])

    assert msg =~ "argument 1 (x).waypoints.0.x_coord is out of range for s32"

    for c <- [:red, :green, :blue, :dark_magenta], do: assert_round_trip(i, "echo-color", c)

    for s <- [{:circle, 1.5}, {:rectangle, p}, {:named, "n"}, :empty],
        do: assert_round_trip(i, "echo-shape", s)

    assert {:error, %Error{kind: :type}} = CI.call(i, {@echo, "echo-shape"}, [:circle])
    assert {:error, %Error{kind: :type}} = CI.call(i, {@echo, "echo-shape"}, [{:empty, 1}])

    for f <- [[], [:read], [:read, :write, :execute]],
        do: assert_round_trip(i, "echo-permissions", f)

    assert {{:ok, [:read, :write]}, _} = round_trip(i, "echo-permissions", [:write, :read, :read])
    wide = for n <- [0, 5, 30, 31], do: :"flag#{n}"
    assert_round_trip(i, "echo-wide-flags", wide)
    assert {:error, %Error{kind: :type}} = CI.call(i, {@echo, "echo-permissions"}, [[:fly]])
  end

  test "options and results round-trip, nested ones too", %{instance: i} do
    for v <- [:none, {:some, 0}, {:some, 4_294_967_295}],
        do: assert_round_trip(i, "echo-option", v)

    for v <- [:none, {:some, :none}, {:some, {:some, "x"}}, {:some, {:some, ""}}],
        do: assert_round_trip(i, "echo-nested-option", v)

    assert {:error, %Error{kind: :type}} = CI.call(i, {@echo, "echo-option"}, [nil])
    assert {:error, %Error{kind: :type}} = CI.call(i, {@echo, "echo-option"}, [5])

    for v <- [{:ok, 1}, {:error, "bad"}], do: assert_round_trip(i, "echo-result", v)
    for v <- [:ok, {:error, "bad"}], do: assert_round_trip(i, "echo-result-err-only", v)
    for v <- [{:ok, 2}, :error], do: assert_round_trip(i, "echo-result-ok-only", v)
    for v <- [:ok, :error], do: assert_round_trip(i, "echo-result-empty", v)
    assert {:error, %Error{kind: :type}} = CI.call(i, {@echo, "echo-result-err-only"}, [{:ok, 1}])
  end

  test "more than 16 flat parameters, and a function of none", %{instance: i} do
    p = %{x_coord: 1, y_coord: 2, label: "L"}
    args = [1, -2, 3, -4, 5, -6, 7, -8, 0.5, 2.5, true, "z", "str", <<9, 9>>, p, {:some, 11}]
    assert CI.call(i, "#{@echo}#echo-many", args) == {:ok, inspect(args)}
    assert CI.call(i, {@echo, "nothing"}, []) == :ok
  end

  test "guest-only functions and top-level exports and imports", %{instance: i} do
    assert CI.call(i, {@compute, "add"}, [2, 3]) == {:ok, 5}
    assert CI.call(i, {@compute, "concat"}, ["ab", "cd"]) == {:ok, "abcd"}
    assert CI.call(i, {@compute, "sum-list"}, [<<1, 2, 250>>]) == {:ok, 253}
    assert {:ok, bytes} = CI.call(i, {@compute, "make-bytes"}, [1_048_576])
    assert byte_size(bytes) == 1_048_576 and binary_part(bytes, 256, 3) == <<0, 1, 2>>

    assert CI.call(i, {@compute, "manhattan"}, [%{x_coord: -3, y_coord: 4, label: ""}]) ==
             {:ok, 7}

    assert CI.call(i, "hello", ["Ada"]) == {:ok, "Hello, Ada!"}
  end

  test "a handler's answer of the wrong type traps with the import and the path", ctx do
    imports =
      ctx.component
      |> then(fn _ -> Wasmbeam.ComponentFixtures.types_imports(self()) end)
      |> put_in([@host, "echo-point"], fn _caller, p -> %{p | label: 5} end)

    i = CI.new!(ctx.component, imports)

    assert {:error, %Error{kind: :trap, message: msg}} =
             CI.call(i, {@echo, "echo-point"}, [%{x_coord: 1, y_coord: 2, label: "a"}])

    assert msg =~ "host function #{@host}#echo-point"
    assert msg =~ "the result.label must be string, got: 5"
  end
end
