defmodule Wasmbeam.ModuleTest do
  use ExUnit.Case, async: true

  import Bitwise, only: [bxor: 2]

  alias Wasmbeam.{Engine, Error, Instance, Module}

  @moduletag :tmp_dir

  # (module (func (export "add") (param i32 i32) (result i32)
  #   local.get 0 local.get 1 i32.add)), assembled by hand.
  @header <<0, "asm", 1, 0, 0, 0>>
  @type_section <<1, 7, 1, 0x60, 2, 0x7F, 0x7F, 1, 0x7F>>
  @func_section <<3, 2, 1, 0>>
  @export_section <<7, 7, 1, 3, "add", 0, 0>>
  @code_section <<10, 9, 1, 7, 0, 0x20, 0, 0x20, 1, 0x6A, 0x0B>>
  @add_wasm @header <> @type_section <> @func_section <> @export_section <> @code_section

  @add_wat ~S[(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))]

  defp add(module), do: module |> Instance.new!() |> Instance.call("add", [2, 3])

  describe "compile/2" do
    test "compiles a wasm binary" do
      assert {:ok, %Module{} = module} = Module.compile(@add_wasm)
      assert module.engine == Engine.default()
      assert Module.exports(module) == [{"add", {:func, [:i32, :i32], [:i32]}}]
      assert {:ok, [5]} = add(module)
    end

    test "compiles WAT text to the same module" do
      assert {:ok, module} = Module.compile(@add_wat)
      assert Module.exports(module) == Module.exports(Module.compile!(@add_wasm))
      assert {:ok, [5]} = add(module)
    end

    test "compiles with a given engine" do
      engine = Engine.new!(consume_fuel: true)
      assert {:ok, %Module{engine: ^engine}} = Module.compile(engine, @add_wat)
    end

    test "invalid WAT text is a :parse error" do
      assert {:error, %Error{kind: :parse, message: msg, offset: nil}} =
               Module.compile("(module (func (export \"f\") i32.bogus))")

      assert msg =~ "not valid WAT"
      assert {:error, %Error{kind: :parse}} = Module.compile("")
      assert {:error, %Error{kind: :parse}} = Module.compile("(module")
    end

    test "random bytes are a :parse error (no wasm header)" do
      :rand.seed(:exsss, {1, 2, 3})

      for _ <- 1..20 do
        bytes = :rand.bytes(64)
        # make sure they do not happen to start with the wasm magic
        bytes = if binary_part(bytes, 0, 4) == "\0asm", do: "x" <> bytes, else: bytes
        assert {:error, %Error{kind: :parse}} = Module.compile(bytes)
      end
    end

    test "a header followed by garbage is a :validation error with an offset" do
      :rand.seed(:exsss, {4, 5, 6})

      for _ <- 1..20 do
        bytes = @header <> :rand.bytes(32)

        assert {:error, %Error{kind: kind, offset: offset}} = Module.compile(bytes)
        assert kind == :validation
        assert is_integer(offset) and offset >= 8 and offset <= byte_size(bytes)
      end
    end

    test "a truncated binary is a :validation error at its end" do
      for cut <- [9, 12, 20, byte_size(@add_wasm) - 1] do
        truncated = binary_part(@add_wasm, 0, cut)

        assert {:error, %Error{kind: :validation, offset: offset, message: msg}} =
                 Module.compile(truncated),
               "cut at #{cut}"

        assert offset <= cut
        assert msg =~ "end-of-file" or msg =~ "unexpected end"
      end
    end

    test "an unknown section id is a :validation error" do
      bytes = @header <> <<99, 0>>

      assert {:error, %Error{kind: :validation, offset: offset, message: msg}} =
               Module.compile(bytes)

      assert msg =~ "section"
      assert offset in 8..10
    end

    test "a wrong binary version is a :validation error at the version" do
      assert {:error, %Error{kind: :validation, offset: 4}} =
               Module.compile(<<0, "asm", 2, 0, 0, 0>>)
    end

    test "a module-level validation error (bad export index) is :validation with an offset" do
      bad_export = <<7, 7, 1, 3, "add", 0, 5>>
      bytes = @header <> @type_section <> @func_section <> bad_export <> @code_section

      assert {:error, %Error{kind: :validation, offset: offset}} = Module.compile(bytes)
      assert is_integer(offset)
    end

    test "an invalid function body is a :validation error with an offset, not :compile" do
      # i32.add replaced by i64.add: a type error inside the code section
      body = <<10, 9, 1, 7, 0, 0x20, 0, 0x20, 1, 0x7C, 0x0B>>
      bytes = @header <> @type_section <> @func_section <> @export_section <> body

      assert {:error, %Error{kind: :validation, offset: offset}} = Module.compile(bytes)
      assert is_integer(offset)

      assert {:error, %Error{kind: :validation}} =
               Module.compile(~S[(module (func (result i32) i64.const 1))])
    end

    test "a non-binary is an :argument error" do
      for bad <- [123, nil, :wat, ~c"(module)", ["(module)"]] do
        assert {:error, %Error{kind: :argument, message: msg}} = Module.compile(bad)
        assert msg =~ "expected wasm bytes or WAT text"
      end
    end

    test "compile!/2 raises Wasmbeam.Error" do
      assert %Module{} = Module.compile!(@add_wasm)
      assert_raise Error, ~r/\(parse\)/, fn -> Module.compile!("(module") end
    end
  end

  describe "compile_file/2" do
    test "reads and compiles .wasm and .wat files", %{tmp_dir: dir} do
      wasm = Path.join(dir, "add.wasm")
      wat = Path.join(dir, "add.wat")
      File.write!(wasm, @add_wasm)
      File.write!(wat, @add_wat)

      assert {:ok, m1} = Module.compile_file(wasm)
      assert {:ok, m2} = Module.compile_file(Engine.default(), wat)
      assert {:ok, [5]} = add(m1)
      assert {:ok, [5]} = add(m2)
    end

    test "a missing file is an :argument error naming the path", %{tmp_dir: dir} do
      path = Path.join(dir, "missing.wasm")

      assert {:error, %Error{kind: :argument, message: msg}} = Module.compile_file(path)
      assert msg =~ path
      assert msg =~ "no such file"
    end

    test "a directory is an :argument error", %{tmp_dir: dir} do
      assert {:error, %Error{kind: :argument}} = Module.compile_file(dir)
    end

    test "a file with invalid contents gives the compile error", %{tmp_dir: dir} do
      path = Path.join(dir, "bad.wasm")
      File.write!(path, @header <> <<99, 0>>)
      assert {:error, %Error{kind: :validation}} = Module.compile_file(path)
    end
  end

  describe "validate/2" do
    test "accepts valid modules without compiling" do
      assert :ok = Module.validate(@add_wasm)
      assert :ok = Module.validate(@add_wat)
      assert :ok = Module.validate(Engine.new!(), "(module)")
    end

    test "reports :validation with offset, and :parse" do
      assert {:error, %Error{kind: :validation, offset: offset}} =
               Module.validate(~S[(module (func (result i32) i64.const 1))])

      assert is_integer(offset)

      assert {:error, %Error{kind: :validation, offset: 4}} =
               Module.validate(<<0, "asm", 2, 0, 0, 0>>)

      assert {:error, %Error{kind: :parse}} = Module.validate("(modul")
    end

    test "uses the engine's features" do
      mem64 = ~S[(module (memory i64 1))]
      assert :ok = Module.validate(mem64)

      assert {:error, %Error{kind: :validation}} =
               Module.validate(Engine.new!(features: [memory64: false]), mem64)
    end

    test "a non-binary is an :argument error like compile/2, not a FunctionClauseError" do
      assert {:error, %Error{kind: :argument}} = Module.validate(123)
    end
  end

  describe "imports/1 and exports/1" do
    test "give full types, in order" do
      module = Module.compile!(~S[(module
          (import "env" "log" (func (param i32 i64 f32 f64)))
          (import "env" "mem" (memory 1 16))
          (import "other" "tab" (table 2 10 funcref))
          (import "env" "counter" (global (mut i64)))
          (import "env" "pi" (global f64))
          (import "env" "ext" (table 0 externref))
          (func $f (export "f") (param v128 funcref externref) (result i32 i64)
            i32.const 0 i64.const 0)
          (memory (export "memory") 2)
          (table (export "table") 3 funcref)
          (global (export "g") (mut i32) (i32.const 0))
          (global (export "k") f32 (f32.const 1))
          (export "log_again" (func 0))
          (export "mem_again" (memory 0)))])

      assert Module.imports(module) == [
               {"env", "log", {:func, [:i32, :i64, :f32, :f64], []}},
               {"env", "mem",
                {:memory, %{min: 1, max: 16, memory64: false, shared: false, page_size: 65_536}}},
               {"other", "tab", {:table, %{element: :funcref, min: 2, max: 10}}},
               {"env", "counter", {:global, :i64, :var}},
               {"env", "pi", {:global, :f64, :const}},
               {"env", "ext", {:table, %{element: :externref, min: 0, max: nil}}}
             ]

      assert Module.exports(module) == [
               {"f", {:func, [:v128, :funcref, :externref], [:i32, :i64]}},
               {"memory",
                {:memory, %{min: 2, max: nil, memory64: false, shared: false, page_size: 65_536}}},
               {"table", {:table, %{element: :funcref, min: 3, max: nil}}},
               {"g", {:global, :i32, :var}},
               {"k", {:global, :f32, :const}},
               {"log_again", {:func, [:i32, :i64, :f32, :f64], []}},
               {"mem_again",
                {:memory, %{min: 1, max: 16, memory64: false, shared: false, page_size: 65_536}}}
             ]
    end

    test "are empty for an empty module" do
      module = Module.compile!("(module)")
      assert Module.imports(module) == []
      assert Module.exports(module) == []
    end
  end

  describe "name/1" do
    test "comes from the name section" do
      assert Module.name(Module.compile!(~S[(module $calculator (func (export "f")))])) ==
               "calculator"
    end

    test "is nil without one" do
      assert Module.name(Module.compile!(@add_wat)) == nil
      assert Module.name(Module.compile!(@add_wasm)) == nil
    end
  end

  describe "serialize/2, deserialize/3 and deserialize_unsafe/2" do
    setup do
      module = Module.compile!(~S[(module $ser (memory (export "mem") 1)
        (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))])

      key = :crypto.strong_rand_bytes(32)
      {:ok, bytes} = Module.serialize(module, key: key)
      %{module: module, bytes: bytes, key: key}
    end

    test "round trip gives a working module", %{module: module, bytes: bytes, key: key} do
      assert is_binary(bytes) and byte_size(bytes) > 44
      assert {:ok, %Module{} = back} = Module.deserialize(bytes, key: key)
      assert Module.exports(back) == Module.exports(module)
      assert Module.name(back) == "ser"
      assert {:ok, [5]} = add(back)
    end

    test "an engine with the same configuration loads it", %{bytes: bytes, key: key} do
      engine = Engine.new!()
      assert {:ok, back} = Module.deserialize(engine, bytes, key: key)
      assert back.engine == engine
      assert {:ok, [5]} = add(back)
    end

    test "serializing twice gives bytes that both load", %{module: module, bytes: bytes, key: key} do
      assert {:ok, again} = Module.serialize(module, key: key)
      assert {:ok, _} = Module.deserialize(again, key: key)
      assert {:ok, _} = Module.deserialize(bytes, key: key)
    end

    test "without the key, or with another, nothing loads", %{bytes: bytes, key: key} do
      assert {:error, %Error{kind: :argument, message: msg}} = Module.deserialize(bytes, [])
      assert msg =~ "needs the :key"
      # The old two-argument form (engine, bytes) says the same.
      assert {:error, %Error{kind: :argument}} = Module.deserialize(Engine.default(), bytes)

      assert {:error, %Error{kind: :deserialize, message: msg}} =
               Module.deserialize(bytes, key: :crypto.strong_rand_bytes(32))

      assert msg =~ "keyed check"

      for bad <- [<<1, 2, 3>>, :key, binary_part(key, 0, 31)] do
        assert {:error, %Error{kind: :argument}} = Module.deserialize(bytes, key: bad)

        assert {:error, %Error{kind: :argument}} =
                 Module.serialize(Module.compile!("(module)"), key: bad)
      end
    end

    test "unkeyed bytes load only through deserialize_unsafe/2", %{module: module, key: key} do
      {:ok, unkeyed} = Module.serialize(module)

      assert {:error, %Error{kind: :deserialize, message: msg}} =
               Module.deserialize(unkeyed, key: key)

      assert msg =~ "not sealed with a key"
      assert {:ok, back} = Module.deserialize_unsafe(unkeyed)
      assert {:ok, [5]} = add(back)
      # A forger who rewrites the payload and recomputes the plain
      # checksum still cannot get past the keyed check.
      <<"WASMBEAM-M1\n", _digest::binary-size(32), payload::binary>> = unkeyed
      forged = "WASMBEAM-M2\n" <> :crypto.hash(:sha256, payload) <> payload
      assert {:error, %Error{kind: :deserialize}} = Module.deserialize(forged, key: key)
    end

    test "random bytes and plain wasm are refused", %{key: key} do
      :rand.seed(:exsss, {7, 8, 9})

      for bytes <- [
            "",
            :rand.bytes(10),
            :rand.bytes(10_000),
            @add_wasm,
            "WASMBEAM-M1\n",
            "WASMBEAM-M2\n"
          ] do
        assert {:error, %Error{kind: :deserialize}} = Module.deserialize(bytes, key: key)
        assert {:error, %Error{kind: :deserialize}} = Module.deserialize_unsafe(bytes)
      end
    end

    test "a truncated artifact is refused", %{bytes: bytes, key: key} do
      for cut <- [0, 5, 12, 20, 44, div(byte_size(bytes), 2), byte_size(bytes) - 1] do
        assert {:error, %Error{kind: :deserialize}} =
                 Module.deserialize(binary_part(bytes, 0, cut), key: key),
               "cut at #{cut}"
      end
    end

    test "an artifact with extra bytes is refused", %{bytes: bytes, key: key} do
      assert {:error, %Error{kind: :deserialize}} = Module.deserialize(bytes <> <<0>>, key: key)
    end

    test "a flipped byte anywhere is refused", %{bytes: bytes, key: key} do
      size = byte_size(bytes)

      for position <- [0, 11, 12, 30, 44, 100, div(size, 2), size - 1] do
        <<before::binary-size(position), byte, rest::binary>> = bytes
        flipped = <<before::binary, bxor(byte, 0x40), rest::binary>>

        assert {:error, %Error{kind: :deserialize}} = Module.deserialize(flipped, key: key),
               "flipped byte #{position}"
      end
    end

    test "an artifact from an engine with another configuration is refused", %{
      bytes: bytes,
      key: key
    } do
      for options <- [
            [consume_fuel: true],
            [strategy: :pulley],
            [strategy: :winch, features: [relaxed_simd: false, tail_call: false]]
          ] do
        engine = Engine.new!(options)

        assert {:error, %Error{kind: :deserialize, message: msg}} =
                 Module.deserialize(engine, bytes, key: key),
               inspect(options)

        assert is_binary(msg) and msg != ""
      end

      # and the other way round: made with fuel or with a proposal this
      # engine does not enable
      for options <- [[consume_fuel: true], [features: [wide_arithmetic: true]]] do
        {:ok, other} =
          options |> Engine.new!() |> Module.compile!(@add_wat) |> Module.serialize(key: key)

        assert {:error, %Error{kind: :deserialize}} = Module.deserialize(other, key: key),
               inspect(options)
      end
    end

    test "a non-binary is an :argument error, not a FunctionClauseError", %{key: key} do
      assert {:error, %Error{kind: :argument}} = Module.deserialize(:not_bytes, key: key)
      assert {:error, %Error{kind: :argument}} = Module.deserialize_unsafe(:not_bytes)
      assert {:error, %Error{kind: :argument}} = Module.deserialize(:engine, "x", key: key)
    end
  end

  test "inspect lists the exports with their types" do
    module = Module.compile!(~S[(module (memory (export "mem") 1 3)
        (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
        (func (export "pair") (result i32 i64) i32.const 0 i64.const 0)
        (global (export "g") (mut i64) (i64.const 0)))])

    assert inspect(module) ==
             "#Wasmbeam.Module<mem: memory 1..3, add: func (i32, i32) -> i32, " <>
               "pair: func () -> (i32, i64), g: global mut i64>"

    assert inspect(Module.compile!("(module)")) == "#Wasmbeam.Module<>"
  end
end
