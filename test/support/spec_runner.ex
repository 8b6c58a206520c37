defmodule Wasmbeam.Test.SpecRunner do
  @moduledoc false
  # Interprets the WebAssembly spec tests, as converted by the
  # `spec_convert` crate (native/spec_convert, see its doc comment for the
  # term format), through Wasmbeam's public API only.
  #
  # Each .wast file runs in its own `Wasmbeam.Store`. The `spectest`
  # module the tests import from is a WAT module instantiated into that
  # store, as host functions are not available.

  import Bitwise
  alias Wasmbeam.{Func, Global, Instance, Module, Store}

  @doc """
  Runs the converter into `out_dir` unless its output is newer than the
  converter's sources.
  """
  def ensure_converted!(root, out_dir) do
    stamp = Path.join(out_dir, ".complete")
    crate = Path.join(root, "native/spec_convert")
    sources = [Path.join(crate, "Cargo.toml") | Path.wildcard(Path.join(crate, "src/**/*.rs"))]

    fresh? = File.exists?(stamp) and Enum.all?(sources, &(mtime(&1) <= mtime(stamp)))

    unless fresh? do
      File.rm_rf!(out_dir)
      File.mkdir_p!(out_dir)
      args = ["run", "--release", "-q", "-p", "spec_convert", "--", out_dir]
      {output, status} = System.cmd("cargo", args, cd: root, stderr_to_stdout: true)
      if status != 0, do: raise("spec_convert failed (#{status}):\n#{output}")
    end

    :ok
  end

  defp mtime(path), do: File.stat!(path, time: :posix).mtime

  @doc """
  Every distinct module of the converted files under `out_dir`, for tests
  that use the spec suite as a corpus (test/wasmbeam/mutation_test.exs):
  `{directive, mod}` in a stable order (files by path, directives by
  line), `mod` being `{:binary, bytes}` or `{:text, wat}`; the first
  directive a module appears in names it. `dirs` limits the files to
  those directories (relative to `out_dir`, e.g. `"wasm-latest"`).
  """
  def modules(out_dir, dirs \\ ["."]) do
    dirs
    |> Enum.flat_map(&Path.wildcard(Path.join([out_dir, &1, "**/*.terms"])))
    |> Enum.sort()
    |> Enum.uniq()
    |> Enum.flat_map(fn path ->
      {:ok, [{:file, _} | directives]} = :file.consult(path)
      Enum.flat_map(directives, &directive_modules/1)
    end)
    |> Enum.uniq_by(&elem(&1, 1))
  end

  defp directive_modules({kind, _line, _name, mod}) when kind in [:module, :module_definition],
    do: module_of(kind, mod)

  defp directive_modules({kind, _line, {:module, mod}, _}), do: module_of(kind, mod)

  defp directive_modules({kind, _line, mod, _message})
       when kind in [:assert_invalid, :assert_malformed, :assert_unlinkable],
       do: module_of(kind, mod)

  defp directive_modules(_other), do: []

  defp module_of(kind, {form, bytes} = mod) when form in [:binary, :text] and is_binary(bytes),
    do: [{kind, mod}]

  defp module_of(_kind, _component), do: []

  @doc """
  The `spectest` module of the spec interpreter, as WAT: no-op `print*`
  functions, the globals, `table` (10..20 funcref) and `memory` (1..2), plus
  `table64` with memory64 and `shared_memory` with threads.
  """
  def spectest_wat(features) do
    """
    (module
      (global (export "global_i32") i32 (i32.const 666))
      (global (export "global_i64") i64 (i64.const 666))
      (global (export "global_f32") f32 (f32.const 666.6))
      (global (export "global_f64") f64 (f64.const 666.6))
      (table (export "table") 10 20 funcref)
      #{if features[:memory64], do: ~S[(table (export "table64") i64 10 20 funcref)]}
      (memory (export "memory") 1 2)
      #{if features[:threads], do: ~S[(memory (export "shared_memory") 1 2 shared)]}
      (func (export "print"))
      (func (export "print_i32") (param i32))
      (func (export "print_i64") (param i64))
      (func (export "print_f32") (param f32))
      (func (export "print_f64") (param f64))
      (func (export "print_i32_f32") (param i32 f32))
      (func (export "print_f64_f64") (param f64 f64)))
    """
  end

  @doc """
  Runs one converted file. `skips` is a map whose keys are the lines of the
  directives to skip.
  Returns one `{kind, line, status}` per directive, status being `:passed`,
  `{:failed, reason}`, or `{:skipped, status_it_would_have}`.
  """
  def run_file(path, engine, skips, spectest_wat) do
    {:ok, [{:file, _} | directives]} = :file.consult(path)
    store = Store.new!(engine)

    spectest = engine |> Module.compile!(spectest_wat) |> Instance.new!(%{}, store: store)

    state = %{
      engine: engine,
      store: store,
      imports: %{"spectest" => spectest},
      current: nil,
      named: %{},
      defs: %{}
    }

    {results, _state} =
      Enum.map_reduce(directives, state, fn directive, state ->
        kind = elem(directive, 0)
        line = elem(directive, 1)

        {status, state} =
          try do
            run(directive, state)
          rescue
            e -> {{:failed, "raised " <> Exception.format(:error, e, __STACKTRACE__)}, state}
          end

        # A skipped directive still runs (later ones may depend on it); its
        # outcome is kept so that stale skips can be reported.
        status = if Map.has_key?(skips, line), do: {:skipped, status}, else: status

        {{kind, line, status}, state}
      end)

    results
  end

  ## Directives

  defp run({:module, _line, name, mod}, state) do
    case instantiate(mod, state) do
      {:ok, inst} -> {:passed, put_instance(state, name, inst)}
      error -> {fail("module did not instantiate", error), %{state | current: :failed}}
    end
  end

  defp run({:module_definition, _line, name, mod}, state) do
    case compile(state.engine, mod) do
      {:ok, module} -> {:passed, %{state | defs: Map.put(state.defs, name, module)}}
      error -> {fail("module definition did not compile", error), state}
    end
  end

  defp run({:module_instance, _line, inst_name, def_name}, state) do
    with {:ok, module} <- Map.fetch(state.defs, def_name),
         {:ok, inst} <- Instance.new(module, state.imports, store: state.store) do
      {:passed, put_instance(state, inst_name, inst)}
    else
      error -> {fail("module instance failed", error), state}
    end
  end

  defp run({:register, _line, as, name}, state) do
    case instance(name, state) do
      {:ok, inst} -> {:passed, %{state | imports: Map.put(state.imports, as, inst)}}
      error -> {fail("nothing to register", error), state}
    end
  end

  defp run({:action, _line, action}, state) do
    case act(action, state) do
      {:ok, _} -> {:passed, state}
      error -> {fail("action failed", error), state}
    end
  end

  defp run({:assert_return, _line, exec, expected}, state) do
    result =
      case exec do
        {:module, mod} -> with {:ok, _} <- instantiate(mod, state), do: {:ok, []}
        action -> act(action, state)
      end

    status =
      case result do
        {:ok, values} when length(values) == length(expected) ->
          if Enum.all?(Enum.zip(expected, values), fn {e, v} -> match_value?(e, v) end),
            do: :passed,
            else: {:failed, "expected #{inspect(expected)}, got #{inspect(values)}"}

        {:ok, values} ->
          {:failed, "expected #{inspect(expected)}, got #{inspect(values)}"}

        error ->
          fail("expected #{inspect(expected)}", error)
      end

    {status, state}
  end

  defp run({:assert_trap, _line, {:module, mod}, message}, state) do
    status =
      case compile(state.engine, mod) do
        {:ok, module} ->
          module |> Instance.new(state.imports, store: state.store) |> trap_status(message)

        error ->
          fail("module did not compile", error)
      end

    {status, state}
  end

  defp run({:assert_trap, _line, action, message}, state),
    do: {action |> act(state) |> trap_status(message), state}

  defp run({:assert_exhaustion, _line, action, message}, state),
    do: {action |> act(state) |> trap_status(message), state}

  defp run({kind, _line, mod, message}, state)
       when kind in [:assert_invalid, :assert_malformed] do
    status =
      case compile(state.engine, mod) do
        {:error, _} -> :passed
        {:ok, _} -> {:failed, "compiled, but expected it to be rejected: #{message}"}
      end

    {status, state}
  end

  defp run({:assert_unlinkable, _line, mod, message}, state) do
    status =
      with {:ok, module} <- compile(state.engine, mod) do
        case Instance.new(module, state.imports, store: state.store) do
          {:error, %Wasmbeam.Error{kind: :link}} -> :passed
          other -> {:failed, "expected a link error (#{message}), got #{brief(other)}"}
        end
      else
        error -> fail("module did not compile", error)
      end

    {status, state}
  end

  defp run({:unsupported, _line, what}, state),
    do: {{:failed, "directive #{what} is not supported by the harness"}, state}

  defp run({:parse_error, _line, message}, state),
    do: {{:failed, "the .wast file did not parse: #{message}"}, state}

  ## Modules and instances

  defp compile(engine, {:binary, bytes}), do: Module.compile(engine, bytes)
  defp compile(engine, {:text, text}), do: Module.compile(engine, text)
  defp compile(_engine, :component), do: {:error, :component_model_not_supported}

  defp instantiate(mod, state) do
    with {:ok, module} <- compile(state.engine, mod) do
      Instance.new(module, state.imports, store: state.store)
    end
  end

  defp put_instance(state, nil, inst), do: %{state | current: inst}

  defp put_instance(state, name, inst),
    do: %{state | current: inst, named: Map.put(state.named, name, inst)}

  defp instance(nil, %{current: %Instance{} = inst}), do: {:ok, inst}
  defp instance(nil, _state), do: {:error, :no_current_module}

  defp instance(name, state) do
    case Map.fetch(state.named, name) do
      {:ok, inst} -> {:ok, inst}
      :error -> {:error, {:no_module_named, name}}
    end
  end

  defp act({:invoke, name, field, args}, state) do
    with {:ok, inst} <- instance(name, state),
         {:ok, args} <- args(args) do
      Instance.call(inst, field, args)
    end
  end

  defp act({:get, name, field}, state) do
    with {:ok, inst} <- instance(name, state),
         {:ok, global} <- Instance.global(inst, field),
         {:ok, value} <- Global.get(global) do
      {:ok, [value]}
    end
  end

  ## Values

  defp args(args) do
    Enum.reduce_while(args, {:ok, []}, fn a, {:ok, acc} ->
      case arg(a) do
        {:ok, v} -> {:cont, {:ok, acc ++ [v]}}
        error -> {:halt, error}
      end
    end)
  end

  defp arg({type, n}) when type in [:i32, :i64, :v128], do: {:ok, n}
  defp arg({:f32, bits}), do: {:ok, float_from_bits(bits, 32)}
  defp arg({:f64, bits}), do: {:ok, float_from_bits(bits, 64)}
  defp arg({:ref_null, _heap}), do: {:ok, nil}
  defp arg({:ref_extern, n}), do: {:ok, n}
  defp arg(other), do: {:error, {:unsupported_argument, other}}

  defp float_from_bits(bits, size) do
    {exp_bits, mant_bits} = if size == 32, do: {8, 23}, else: {11, 52}
    <<sign::1, exp::size(exp_bits), mant::size(mant_bits)>> = <<bits::size(size)>>
    max_exp = (1 <<< exp_bits) - 1

    cond do
      exp == max_exp and mant == 0 and sign == 0 -> :infinity
      exp == max_exp and mant == 0 -> :neg_infinity
      exp == max_exp -> {:nan, bits}
      true -> (fn <<x::float-size(size)>> -> x end).(<<bits::size(size)>>)
    end
  end

  defp float_bits(:infinity, 32), do: 0x7F800000
  defp float_bits(:neg_infinity, 32), do: 0xFF800000
  defp float_bits(:nan, 32), do: 0x7FC00000
  defp float_bits(:infinity, 64), do: 0x7FF0000000000000
  defp float_bits(:neg_infinity, 64), do: 0xFFF0000000000000
  defp float_bits(:nan, 64), do: 0x7FF8000000000000
  defp float_bits({:nan, bits}, _size), do: bits

  defp float_bits(x, size) when is_float(x) do
    <<bits::size(size)>> = <<x::float-size(size)>>
    bits
  end

  defp float_bits(_other, _size), do: nil

  defp match_value?({type, n}, v) when type in [:i32, :i64, :v128], do: v === n
  defp match_value?({:f32, pattern}, v), do: match_float?(pattern, float_bits(v, 32), 32)
  defp match_value?({:f64, pattern}, v), do: match_float?(pattern, float_bits(v, 64), 64)
  defp match_value?({:f32x4, lanes}, v) when is_integer(v), do: match_lanes?(lanes, v, 32)
  defp match_value?({:f64x2, lanes}, v) when is_integer(v), do: match_lanes?(lanes, v, 64)
  defp match_value?({:ref_null, _heap}, v), do: v == nil
  defp match_value?({:ref_extern, nil}, v), do: v != nil and not is_struct(v, Func)
  defp match_value?({:ref_extern, n}, v), do: v === n
  defp match_value?({:ref_func}, v), do: is_struct(v, Func)
  defp match_value?({:either, options}, v), do: Enum.any?(options, &match_value?(&1, v))
  defp match_value?(_expected, _v), do: false

  defp match_lanes?(lanes, v, size) do
    mask = (1 <<< size) - 1

    lanes
    |> Enum.with_index()
    |> Enum.all?(fn {pattern, i} -> match_float?(pattern, v >>> (size * i) &&& mask, size) end)
  end

  defp match_float?(_pattern, nil, _size), do: false

  defp match_float?(:nan_canonical, bits, 32), do: (bits &&& 0x7FFFFFFF) == 0x7FC00000

  defp match_float?(:nan_canonical, bits, 64),
    do: (bits &&& 0x7FFFFFFFFFFFFFFF) == 0x7FF8000000000000

  defp match_float?(:nan_arithmetic, bits, 32),
    do: (bits &&& 0x7FC00000) == 0x7FC00000

  defp match_float?(:nan_arithmetic, bits, 64),
    do: (bits &&& 0x7FF8000000000000) == 0x7FF8000000000000

  defp match_float?(expected, bits, _size), do: expected === bits

  ## Traps

  # Spec trap messages (by prefix) and the trap codes Wasmbeam must report
  # for them; a message not listed here accepts any trap.
  @traps [
    {"unreachable", :unreachable},
    {"integer divide by zero", :integer_division_by_zero},
    {"integer overflow", :integer_overflow},
    {"invalid conversion to integer", :bad_conversion_to_integer},
    {"out of bounds memory access", :memory_out_of_bounds},
    {"out of bounds table access", :table_out_of_bounds},
    {"undefined element", :table_out_of_bounds},
    {"uninitialized element", :indirect_call_to_null},
    {"indirect call type mismatch", :bad_signature},
    {"call stack exhausted", :stack_overflow},
    {"null", :null_reference},
    {"cast failure", :cast_failure},
    {"out of bounds array access", :array_out_of_bounds}
  ]

  defp trap_status({:error, %Wasmbeam.Error{kind: :trap, trap: trap} = e}, message) do
    case Enum.find(@traps, fn {prefix, _} -> String.starts_with?(message, prefix) end) do
      {_, ^trap} ->
        :passed

      nil ->
        :passed

      {_, expected} ->
        {:failed, "expected trap #{expected} (#{message}), got #{brief({:error, e})}"}
    end
  end

  defp trap_status(other, message),
    do: {:failed, "expected a trap (#{message}), got #{brief(other)}"}

  defp fail(what, error), do: {:failed, "#{what}: #{brief(error)}"}

  defp brief({:error, %Wasmbeam.Error{kind: kind, trap: trap, message: message}}),
    do: "error #{kind}#{if trap, do: "/#{trap}"}: #{String.slice(message, 0, 300)}"

  defp brief(other), do: String.slice(inspect(other, limit: 20), 0, 300)
end
