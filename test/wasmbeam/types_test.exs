defmodule Wasmbeam.TypesTest do
  # How values cross the boundary: every value type through an identity
  # function, and Types.format/1.
  use ExUnit.Case, async: true

  import Bitwise
  import Wasmbeam.Test.Wat

  alias Wasmbeam.{Error, Func, Instance, Types}

  @identity ~S[(module
    (func (export "i32") (param i32) (result i32) local.get 0)
    (func (export "i64") (param i64) (result i64) local.get 0)
    (func (export "f32") (param f32) (result f32) local.get 0)
    (func (export "f64") (param f64) (result f64) local.get 0)
    (func (export "v128") (param v128) (result v128) local.get 0)
    (func (export "funcref") (param funcref) (result funcref) local.get 0)
    (func (export "externref") (param externref) (result externref) local.get 0)
    (func (export "f32_bits") (param f32) (result i32) local.get 0 i32.reinterpret_f32)
    (func (export "f64_bits") (param f64) (result i64) local.get 0 i64.reinterpret_f64)
    (func (export "bits_f32") (param i32) (result f32) local.get 0 f32.reinterpret_i32)
    (func (export "bits_f64") (param i64) (result f64) local.get 0 f64.reinterpret_i64)
    (func (export "lanes") (result v128) v128.const i32x4 1 2 3 4)
    (func (export "lane3") (param v128) (result i32) local.get 0 i32x4.extract_lane 3)
    (func (export "is_null_ext") (param externref) (result i32) local.get 0 ref.is_null)
    (func (export "is_null_func") (param funcref) (result i32) local.get 0 ref.is_null)
    (func $seven (export "seven") (result i32) i32.const 7)
    (func (export "ret_func") (result funcref) ref.func $seven)
    (func (export "multi") (param i32 i64 f32 f64) (result f64 f32 i64 i32)
      local.get 3 local.get 2 local.get 1 local.get 0)
    (func (export "none"))
    (elem declare func $seven))]

  setup do
    %{instance: instance!(@identity)}
  end

  defp id(instance, type, value) do
    case Instance.call(instance, type, [value]) do
      {:ok, [result]} -> {:ok, result}
      other -> other
    end
  end

  describe "i32" do
    test "signed and unsigned range inputs, signed results", %{instance: i} do
      for {input, output} <- [
            {0, 0},
            {1, 1},
            {-1, -1},
            {2_147_483_647, 2_147_483_647},
            {-2_147_483_648, -2_147_483_648},
            {0xFFFF_FFFF, -1},
            {0x8000_0000, -2_147_483_648}
          ] do
        assert {:ok, ^output} = id(i, "i32", input), inspect(input)
      end
    end

    test "out-of-range inputs are :type errors", %{instance: i} do
      for bad <- [1 <<< 32, -(1 <<< 31) - 1, 1 <<< 100, -(1 <<< 100)] do
        assert {:error, %Error{kind: :type, message: msg}} = id(i, "i32", bad), inspect(bad)

        # A bignum is described by its size, not printed.
        shown = if abs(bad) < 1 <<< 64, do: "#{bad}", else: "<an integer of about 104 bits>"

        assert msg =~
                 "argument 1 is out of range for i32: #{if bad < 0, do: "-"}" <>
                   String.trim_leading(shown, "-") <> " (it takes -2147483648..4294967295"
      end
    end

    test "non-integers are :type errors", %{instance: i} do
      for bad <- [1.0, "1", :one, nil, [1], {1}] do
        assert {:error, %Error{kind: :type}} = id(i, "i32", bad), inspect(bad)
      end
    end
  end

  describe "i64" do
    test "signed and unsigned range inputs, signed results", %{instance: i} do
      for {input, output} <- [
            {0, 0},
            {-1, -1},
            {(1 <<< 63) - 1, (1 <<< 63) - 1},
            {-(1 <<< 63), -(1 <<< 63)},
            {(1 <<< 64) - 1, -1},
            {1 <<< 63, -(1 <<< 63)},
            {0xFFFF_FFFF, 0xFFFF_FFFF}
          ] do
        assert {:ok, ^output} = id(i, "i64", input), inspect(input)
      end
    end

    test "out-of-range inputs are :type errors", %{instance: i} do
      for bad <- [1 <<< 64, -(1 <<< 63) - 1, 1 <<< 200, 1.0] do
        assert {:error, %Error{kind: :type}} = id(i, "i64", bad), inspect(bad)
      end
    end
  end

  describe "f32 and f64" do
    test "finite floats round-trip", %{instance: i} do
      # f32 results are the nearest single-precision value, widened exactly
      for x <- [0.0, 1.5, -2.25, 1.0e-3, 3.4028234663852886e38] do
        <<expected::float-32>> = <<x::float-32>>
        assert {:ok, ^expected} = id(i, "f32", x), inspect(x)
      end

      for x <- [0.0, 1.5, -2.25, 1.0e-300, 1.7976931348623157e308, 5.0e-324] do
        assert {:ok, result} = id(i, "f64", x)
        assert f64_bits(result) == f64_bits(x)
      end
    end

    test "f32 rounds an f64 input to single precision", %{instance: i} do
      assert {:ok, result} = id(i, "f32", 0.1)
      assert result != 0.1
      assert_in_delta result, 0.1, 1.0e-7
      assert {:ok, bits} = Instance.call(i, "f32_bits", [0.1])
      assert bits == [0x3DCC_CCCD]
    end

    test "-0.0 keeps its sign", %{instance: i} do
      neg = negative_zero()
      assert f64_bits(neg) == <<0x80, 0::56>>

      for type <- ["f32", "f64"] do
        assert {:ok, result} = id(i, type, neg)
        assert f64_bits(result) == <<0x80, 0::56>>, type
        assert {:ok, result} = id(i, type, 0.0)
        assert f64_bits(result) == <<0::64>>, type
      end

      # reinterpreted as integers (results are signed)
      assert Instance.call(i, "f32_bits", [neg]) == {:ok, [-(1 <<< 31)]}
      assert Instance.call(i, "f64_bits", [neg]) == {:ok, [-(1 <<< 63)]}
    end

    test "infinities are atoms both ways", %{instance: i} do
      for type <- ["f32", "f64"], special <- [:infinity, :neg_infinity] do
        assert {:ok, ^special} = id(i, type, special)
      end

      assert {:ok, [0x7F80_0000]} = Instance.call(i, "f32_bits", [:infinity])
      assert Instance.call(i, "f32_bits", [:neg_infinity]) == {:ok, [0xFF80_0000 - (1 <<< 32)]}
      assert {:ok, [0x7FF0_0000_0000_0000]} = Instance.call(i, "f64_bits", [:infinity])
    end

    test ":nan is the canonical NaN", %{instance: i} do
      assert {:ok, :nan} = id(i, "f32", :nan)
      assert {:ok, :nan} = id(i, "f64", :nan)
      assert {:ok, [0x7FC0_0000]} = Instance.call(i, "f32_bits", [:nan])
      assert {:ok, [0x7FF8_0000_0000_0000]} = Instance.call(i, "f64_bits", [:nan])
    end

    test "{:nan, bits} keeps its payload exactly (f32)", %{instance: i} do
      for bits <- [0x7FC0_0001, 0x7F80_0001, 0xFFC0_0000, 0xFFFF_FFFF, 0x7FBF_FFFF] do
        assert {:ok, {:nan, ^bits}} = id(i, "f32", {:nan, bits}), Integer.to_string(bits, 16)
        signed = if bits >= 1 <<< 31, do: bits - (1 <<< 32), else: bits
        assert {:ok, [^signed]} = Instance.call(i, "f32_bits", [{:nan, bits}])
      end

      # a NaN made by the guest comes out with its payload
      assert {:ok, [{:nan, 0x7FA0_0001}]} = Instance.call(i, "bits_f32", [0x7FA0_0001])
    end

    test "{:nan, bits} keeps its payload exactly (f64)", %{instance: i} do
      for bits <- [0x7FF8_0000_0000_0001, 0x7FF0_0000_0000_0001, 0xFFF8_0000_0000_0000] do
        assert {:ok, {:nan, ^bits}} = id(i, "f64", {:nan, bits}), Integer.to_string(bits, 16)
      end

      assert {:ok, [{:nan, 0x7FF4_0000_0000_0000}]} =
               Instance.call(i, "bits_f64", [0x7FF4_0000_0000_0000])
    end

    test "{:nan, 0xFFFF_FFFF_FFFF_FFFF} (all bits set) keeps its payload (f64)", %{instance: i} do
      bits = 0xFFFF_FFFF_FFFF_FFFF
      assert {:ok, {:nan, ^bits}} = id(i, "f64", {:nan, bits})
      assert {:ok, [-1]} = Instance.call(i, "f64_bits", [{:nan, bits}])
    end

    test "{:nan, bits} that is not a NaN, or too wide, is a :type error", %{instance: i} do
      for bits <- [0x3F80_0000, 0, 1 <<< 32, -1] do
        assert {:error, %Error{kind: :type}} = id(i, "f32", {:nan, bits}), inspect(bits)
      end

      for bits <- [0x3FF0_0000_0000_0000, 0, 1 <<< 64] do
        assert {:error, %Error{kind: :type}} = id(i, "f64", {:nan, bits}), inspect(bits)
      end
    end

    test "integers are accepted as floats", %{instance: i} do
      assert {:ok, 3.0} = id(i, "f32", 3)
      assert {:ok, -7.0} = id(i, "f64", -7)
      assert {:ok, result} = id(i, "f64", 1 <<< 53)
      assert result == 9_007_199_254_740_992.0
    end

    test "other terms are :type errors", %{instance: i} do
      for type <- ["f32", "f64"],
          bad <- ["1.0", :inf, nil, {:nan}, {:nan, :x}, [1.0], 1 <<< 80] do
        assert {:error, %Error{kind: :type}} = id(i, type, bad), "#{type} #{inspect(bad)}"
      end
    end
  end

  describe "v128" do
    test "0, 2^128-1 and values in between round-trip", %{instance: i} do
      for x <- [0, 1, (1 <<< 128) - 1, 1 <<< 127, 0x0123_4567_89AB_CDEF_FEDC_BA98_7654_3210] do
        assert {:ok, ^x} = id(i, "v128", x), inspect(x)
      end
    end

    test "negative inputs are two's complement", %{instance: i} do
      assert {:ok, max} = id(i, "v128", -1)
      assert max == (1 <<< 128) - 1
      assert {:ok, min} = id(i, "v128", -(1 <<< 127))
      assert min == 1 <<< 127
    end

    test "lanes are little-endian: lane 0 is the low 32 bits", %{instance: i} do
      assert {:ok, [v]} = Instance.call(i, "lanes", [])
      assert v == (1 ||| 2 <<< 32 ||| 3 <<< 64 ||| 4 <<< 96)
      assert {:ok, [9]} = Instance.call(i, "lane3", [9 <<< 96])
    end

    test "out-of-range and non-integer inputs are :type errors", %{instance: i} do
      for bad <- [1 <<< 128, 1 <<< 200, -(1 <<< 200), 1.0, "0", nil] do
        assert {:error, %Error{kind: :type}} = id(i, "v128", bad), inspect(bad)
      end
    end

    test "negative inputs below -2^127 are :type errors, not wrapped", %{instance: i} do
      for bad <- [-(1 <<< 127) - 1, -(1 <<< 128) + 1] do
        assert {:error, %Error{kind: :type}} = id(i, "v128", bad), inspect(bad)
      end
    end
  end

  describe "funcref" do
    test "nil is the null reference", %{instance: i} do
      assert {:ok, nil} = id(i, "funcref", nil)
      assert {:ok, [1]} = Instance.call(i, "is_null_func", [nil])
    end

    test "a Func of the same store goes in and comes out callable", %{instance: i} do
      {:ok, seven} = Instance.func(i, "seven")
      assert {:ok, [0]} = Instance.call(i, "is_null_func", [seven])
      assert {:ok, %Func{} = back} = id(i, "funcref", seven)
      assert back.name == nil
      assert back.params == []
      assert back.results == [:i32]
      assert back.store == seven.store
      assert {:ok, [7]} = Func.call(back, [])
    end

    test "a funcref made by the guest is callable", %{instance: i} do
      assert {:ok, [%Func{} = f]} = Instance.call(i, "ret_func", [])
      assert {:ok, [7]} = Func.call(f, [])
    end

    test "a Func of another store is a :type error", %{instance: i} do
      other = instance!(~S[(module (func (export "f") (result i32) i32.const 1))])
      {:ok, f} = Instance.func(other, "f")

      assert {:error, %Error{kind: :type, message: msg}} = id(i, "funcref", f)
      assert msg =~ "another store"
    end

    test "other terms are :type errors", %{instance: i} do
      {:ok, memory} = Instance.memory(instance!(~S[(module (memory (export "m") 1))]), "m")

      for bad <- [1, :f, "f", %{}, %{ref: make_ref()}, memory, make_ref()] do
        assert {:error, %Error{kind: :type}} = id(i, "funcref", bad), inspect(bad)
      end
    end
  end

  describe "externref" do
    test "nil is the null reference", %{instance: i} do
      assert {:ok, nil} = id(i, "externref", nil)
      assert {:ok, [1]} = Instance.call(i, "is_null_ext", [nil])
    end

    test "any term comes back equal", %{instance: i} do
      terms = [
        0,
        -1 <<< 100,
        3.25,
        :atom,
        "binary",
        <<1, 2, 3>>,
        :crypto.strong_rand_bytes(100_000),
        [1, [2, 3]],
        {:tuple, self()},
        %{"k" => 1.5, a: %{b: [1, 2]}},
        self(),
        make_ref(),
        fn x -> x + 1 end,
        false,
        []
      ]

      for term <- terms do
        assert {:ok, [0]} = Instance.call(i, "is_null_ext", [term])
        assert {:ok, back} = id(i, "externref", term)
        assert back === term
      end
    end

    test "a closure survives the trip and still runs", %{instance: i} do
      assert {:ok, f} = id(i, "externref", fn x -> x * 2 end)
      assert f.(21) == 42
    end
  end

  test "multi-value parameters and results", %{instance: i} do
    assert {:ok, [4.5, 3.5, -2, 1]} = Instance.call(i, "multi", [1, -2, 3.5, 4.5])
  end

  test "a function with no results returns []", %{instance: i} do
    assert {:ok, []} = Instance.call(i, "none", [])
  end

  describe "format/1" do
    test "formats every extern type" do
      assert Types.format({:func, [], []}) == "func () -> ()"
      assert Types.format({:func, [:i32], [:i64]}) == "func (i32) -> i64"

      assert Types.format({:func, [:f32, :f64], [:v128, :funcref]}) ==
               "func (f32, f64) -> (v128, funcref)"

      memory = %{min: 1, max: 4, memory64: false, shared: false, page_size: 65_536}
      assert Types.format({:memory, memory}) == "memory 1..4"
      assert Types.format({:memory, %{memory | max: nil}}) == "memory 1.."

      assert Types.format({:table, %{element: :externref, min: 0, max: 8}}) ==
               "table externref 0..8"

      assert Types.format({:global, :i64, :const}) == "global i64"
      assert Types.format({:global, :f32, :var}) == "global mut f32"
      assert Types.format({:tag, [:i32]}) == "tag (i32)"
    end
  end
end
