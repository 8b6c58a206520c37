defmodule Wasmbeam.Test.Mutation do
  @moduledoc false
  # Mutation testing over the spec suite's modules, for
  # test/wasmbeam/mutation_test.exs: the corpus, the mutation operators,
  # stub imports, and the run of one mutant through validate, compile,
  # instantiate and call, which checks that every answer is `{:ok, _}` or
  # `{:error, %Wasmbeam.Error{}}` and that no call outlives its timeout.
  #
  # Everything random comes from the process's `:rand` state: the caller
  # seeds it once per mutant, so a mutant is reproducible from the seed and
  # its index alone.

  import Bitwise
  alias Wasmbeam.{Error, Global, Instance, Memory, Module, Table}
  alias Wasmbeam.Test.SpecRunner

  @header <<0, "asm", 1, 0, 0, 0>>

  ## Corpus

  @valid [:module, :module_definition, :assert_return, :assert_trap, :assert_unlinkable]

  @doc """
  The seeds mutants start from: the spec suite's module binaries that are
  valid (`:valid`), those it expects to be rejected (`:invalid`) and its
  WAT texts (`:text`), each a tuple for constant-time picks.
  """
  def corpus(out_dir, dirs) do
    modules = SpecRunner.modules(out_dir, dirs)

    %{
      valid: List.to_tuple(for {kind, {:binary, b}} <- modules, kind in @valid, do: b),
      invalid: List.to_tuple(for {kind, {:binary, b}} <- modules, kind not in @valid, do: b),
      text: List.to_tuple(for {_kind, {:text, t}} <- modules, do: t)
    }
  end

  ## Mutants

  @ops [
    :flip_bits,
    :interesting_bytes,
    :leb,
    :overlong_leb,
    :insert,
    :delete,
    :duplicate,
    :truncate,
    :splice,
    :section_id,
    :section_size,
    :section_swap,
    :section_duplicate,
    :section_delete,
    :section_payload,
    :section_splice
  ]

  @doc """
  Makes one mutant from `corpus`: `%{bytes:, from:, ops:}`, `from` naming
  the seed module and `ops` the operators applied, in order. Most binary
  mutants keep a valid 8-byte header, so that they get past the magic and
  version check.
  """
  def mutant(corpus) do
    {from, bytes} = pick_seed(corpus)

    # Positions below `lo` are left alone: the header, in most binary mutants.
    lo = if header?(bytes) and :rand.uniform(100) <= 80, do: 8, else: 0
    count = one_of([1, 1, 1, 1, 1, 1, 2, 2, 3, 4])

    {bytes, ops} =
      Enum.reduce(1..count, {bytes, []}, fn _, {bytes, ops} ->
        op = one_of(@ops)
        {apply_op(op, bytes, lo, corpus), [op | ops]}
      end)

    %{bytes: bytes, from: from, ops: Enum.reverse(ops)}
  end

  defp pick_seed(corpus) do
    case :rand.uniform(100) do
      n when n <= 80 -> pick(corpus, :valid)
      n when n <= 93 -> pick(corpus, :invalid)
      n when n <= 97 -> pick(corpus, :text)
      _ -> {:random, @header <> random_bytes(:rand.uniform(64) - 1)}
    end
  end

  defp pick(corpus, set) do
    seeds = Map.fetch!(corpus, set)
    i = :rand.uniform(tuple_size(seeds)) - 1
    {{set, i}, elem(seeds, i)}
  end

  defp header?(<<@header, _::binary>>), do: true
  defp header?(_), do: false

  @interesting [0x00, 0xFF, 0x7F, 0x80, 0x81, 0xC0, 0x01, 0x40, 0x3F, 0x41, 0x7E, 0x0B]

  # LEB128 encodings at the edges: unterminated, over-long, too large for
  # u32/i32, u64/i64 extremes, and plain small ones.
  @lebs [
    <<0x80>>,
    <<0xFF>>,
    <<0x80, 0x00>>,
    <<0x80, 0x80, 0x80, 0x80, 0x00>>,
    <<0x80, 0x80, 0x80, 0x80, 0x80, 0x00>>,
    <<0xFF, 0xFF, 0xFF, 0xFF, 0x0F>>,
    <<0xFF, 0xFF, 0xFF, 0xFF, 0x7F>>,
    <<0xFF, 0xFF, 0xFF, 0xFF, 0x1F>>,
    <<0x80, 0x80, 0x80, 0x80, 0x78>>,
    <<0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01>>,
    <<0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7F>>,
    <<0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01>>,
    <<0x00>>,
    <<0x7F>>,
    <<0x40>>,
    <<0x80, 0x02>>,
    <<0x80, 0x80, 0x04>>
  ]

  @doc false
  def apply_op(op, bytes, lo, corpus)

  def apply_op(:flip_bits, bytes, lo, _corpus) do
    if byte_size(bytes) > lo do
      Enum.reduce(1..:rand.uniform(8), bytes, fn _, b ->
        p = byte_pos(b, lo)
        <<pre::binary-size(p), x, post::binary>> = b
        <<pre::binary, bxor(x, 1 <<< (:rand.uniform(8) - 1)), post::binary>>
      end)
    else
      insert_at(bytes, lo, random_bytes(1))
    end
  end

  def apply_op(:interesting_bytes, bytes, lo, _corpus) do
    Enum.reduce(1..:rand.uniform(4), bytes, fn _, b ->
      overwrite(b, pos(b, lo), <<one_of(@interesting)>>)
    end)
  end

  def apply_op(:leb, bytes, lo, _corpus) do
    leb = one_of(@lebs)

    if :rand.uniform(2) == 1,
      do: overwrite(bytes, pos(bytes, lo), leb),
      else: insert_at(bytes, pos(bytes, lo), leb)
  end

  # A byte that may end a LEB128 number gets a continuation bit and a zero
  # byte after it: the same value, one byte longer.
  def apply_op(:overlong_leb, bytes, lo, _corpus) do
    candidates =
      for _ <- 1..8,
          byte_size(bytes) > lo,
          p = byte_pos(bytes, lo),
          :binary.at(bytes, p) < 0x80,
          do: p

    case candidates do
      [p | _] ->
        <<pre::binary-size(p), x, post::binary>> = bytes
        <<pre::binary, x ||| 0x80, 0x00, post::binary>>

      [] ->
        apply_op(:leb, bytes, lo, nil)
    end
  end

  def apply_op(:insert, bytes, lo, _corpus) do
    len = run_length()

    run =
      case :rand.uniform(3) do
        1 -> random_bytes(len)
        2 -> :binary.copy(<<one_of(@interesting)>>, len)
        3 -> slice(bytes, len)
      end

    insert_at(bytes, pos(bytes, lo), run)
  end

  def apply_op(:delete, bytes, lo, _corpus) do
    p = pos(bytes, lo)
    len = min(run_length(), byte_size(bytes) - p)
    <<pre::binary-size(p), _::binary-size(len), post::binary>> = bytes
    pre <> post
  end

  def apply_op(:duplicate, bytes, lo, _corpus) do
    if :rand.uniform(4) == 1 do
      # The tail from a random point, appended again.
      p = pos(bytes, lo)
      bytes <> binary_part(bytes, p, byte_size(bytes) - p)
    else
      insert_at(bytes, pos(bytes, lo), slice(bytes, run_length()))
    end
  end

  def apply_op(:truncate, bytes, lo, _corpus), do: binary_part(bytes, 0, pos(bytes, lo))

  # The start of this module, then the end of another one.
  def apply_op(:splice, bytes, lo, corpus) do
    {_, other} = pick(corpus, :valid)
    p = pos(bytes, lo)
    q = pos(other, min(8, byte_size(other)))
    binary_part(bytes, 0, p) <> binary_part(other, q, byte_size(other) - q)
  end

  def apply_op(op, bytes, lo, corpus) do
    case sections(bytes) do
      {head, [_ | _] = sections, rest} -> section_op(op, head, sections, rest, lo, corpus)
      _ -> apply_op(:flip_bits, bytes, lo, corpus)
    end
  end

  defp section_op(:section_id, head, sections, rest, _lo, _corpus) do
    id = if :rand.uniform(10) == 1, do: :rand.uniform(256) - 1, else: :rand.uniform(20) - 1
    i = :rand.uniform(length(sections)) - 1
    sections = List.update_at(sections, i, fn {_, payload} -> {id, payload} end)
    encode(head, sections, rest)
  end

  defp section_op(:section_size, head, sections, rest, _lo, _corpus) do
    i = :rand.uniform(length(sections)) - 1
    {id, payload} = Enum.at(sections, i)
    size = byte_size(payload)

    size_bytes =
      case :rand.uniform(6) do
        1 -> leb(max(size + one_of([-3, -2, -1, 1, 2, 3]), 0))
        2 -> leb(0)
        3 -> leb(size * 2 + 1)
        4 -> leb(0xFFFF_FFFF)
        5 -> overlong_leb(size, :rand.uniform(3))
        6 -> one_of(@lebs)
      end

    {before, [_ | after_]} = Enum.split(sections, i)

    IO.iodata_to_binary([
      head,
      Enum.map(before, &encode_section/1),
      id,
      size_bytes,
      payload,
      Enum.map(after_, &encode_section/1),
      rest
    ])
  end

  defp section_op(:section_swap, head, sections, rest, _lo, _corpus) do
    n = length(sections)
    i = :rand.uniform(n) - 1
    j = :rand.uniform(n) - 1
    a = Enum.at(sections, i)
    b = Enum.at(sections, j)
    sections = sections |> List.replace_at(i, b) |> List.replace_at(j, a)
    encode(head, sections, rest)
  end

  defp section_op(:section_duplicate, head, sections, rest, _lo, _corpus) do
    section = one_of(sections)
    encode(head, List.insert_at(sections, :rand.uniform(length(sections) + 1) - 1, section), rest)
  end

  defp section_op(:section_delete, head, sections, rest, _lo, _corpus),
    do: encode(head, List.delete_at(sections, :rand.uniform(length(sections)) - 1), rest)

  # A byte-level mutation inside one section, whose size is then fixed:
  # the framing stays valid, so the damage reaches the section's decoder.
  defp section_op(:section_payload, head, sections, rest, _lo, corpus) do
    i = :rand.uniform(length(sections)) - 1

    op =
      one_of([
        :flip_bits,
        :interesting_bytes,
        :leb,
        :overlong_leb,
        :insert,
        :delete,
        :duplicate
      ])

    sections = List.update_at(sections, i, fn {id, p} -> {id, apply_op(op, p, 0, corpus)} end)
    encode(head, sections, rest)
  end

  # A section of another module, in place of one of the same id, or added.
  defp section_op(:section_splice, head, sections, rest, lo, corpus) do
    {_, other} = pick(corpus, :valid)

    case sections(other) do
      {_, [_ | _] = theirs, _} ->
        {id, _} = section = one_of(theirs)

        sections =
          case Enum.find_index(sections, &(elem(&1, 0) == id)) do
            nil -> List.insert_at(sections, :rand.uniform(length(sections) + 1) - 1, section)
            i -> List.replace_at(sections, i, section)
          end

        encode(head, sections, rest)

      _ ->
        apply_op(:splice, encode(head, sections, rest), lo, corpus)
    end
  end

  @doc false
  # `{header, [{id, payload}], rest}`: the 8 bytes before the sections (not
  # necessarily a valid header), the sections that parse, and what is left
  # from the first one that does not.
  def sections(bytes) when byte_size(bytes) >= 8 do
    <<head::binary-size(8), body::binary>> = bytes
    {sections, rest} = parse_sections(body, [])
    {head, sections, rest}
  end

  def sections(_bytes), do: nil

  defp parse_sections(<<>>, acc), do: {Enum.reverse(acc), <<>>}

  defp parse_sections(<<id, more::binary>> = body, acc) do
    case read_leb(more, 0, 0) do
      {size, payload_and_rest} when byte_size(payload_and_rest) >= size ->
        <<payload::binary-size(size), rest::binary>> = payload_and_rest
        parse_sections(rest, [{id, payload} | acc])

      _ ->
        {Enum.reverse(acc), body}
    end
  end

  defp read_leb(<<b, rest::binary>>, shift, acc) when shift < 35 do
    acc = acc ||| (b &&& 0x7F) <<< shift
    if b < 0x80, do: {acc, rest}, else: read_leb(rest, shift + 7, acc)
  end

  defp read_leb(_bytes, _shift, _acc), do: :error

  defp encode(head, sections, rest),
    do: IO.iodata_to_binary([head, Enum.map(sections, &encode_section/1), rest])

  defp encode_section({id, payload}), do: [id, leb(byte_size(payload)), payload]

  @doc false
  def leb(n) when n < 0x80, do: <<n>>
  def leb(n), do: <<0x80 ||| (n &&& 0x7F), leb(n >>> 7)::binary>>

  # `n` in LEB128 with `extra` redundant bytes.
  defp overlong_leb(n, extra) do
    bytes = leb(n)
    last = byte_size(bytes) - 1
    <<init::binary-size(last), final>> = bytes
    pad = :binary.copy(<<0x80>>, extra - 1)
    <<init::binary, final ||| 0x80, pad::binary, 0x00>>
  end

  # A position in lo..size (size: at the end).
  defp pos(bytes, lo) when byte_size(bytes) <= lo, do: byte_size(bytes)
  defp pos(bytes, lo), do: lo + :rand.uniform(byte_size(bytes) - lo + 1) - 1

  # The position of a byte in lo..size-1 (there must be one).
  defp byte_pos(bytes, lo), do: lo + :rand.uniform(byte_size(bytes) - lo) - 1

  defp overwrite(bytes, p, run) do
    len = min(byte_size(run), byte_size(bytes) - p)
    <<pre::binary-size(p), _::binary-size(len), post::binary>> = bytes
    <<pre::binary, run::binary, post::binary>>
  end

  defp insert_at(bytes, p, run) do
    <<pre::binary-size(p), post::binary>> = bytes
    <<pre::binary, run::binary, post::binary>>
  end

  defp slice(bytes, len) do
    len = min(len, byte_size(bytes))
    p = :rand.uniform(byte_size(bytes) - len + 1) - 1
    binary_part(bytes, p, len)
  end

  # A random element, drawn the same way by every Elixir version (unlike
  # Enum.random/1), so that a seed names the same mutants everywhere.
  defp one_of(list), do: Enum.at(list, :rand.uniform(length(list)) - 1)

  # Mostly short runs, sometimes long ones.
  defp run_length do
    case :rand.uniform(20) do
      20 -> :rand.uniform(4096)
      n when n >= 17 -> :rand.uniform(64)
      _ -> :rand.uniform(8)
    end
  end

  defp random_bytes(0), do: <<>>
  defp random_bytes(n), do: IO.iodata_to_binary(for _ <- 1..n, do: :rand.uniform(256) - 1)

  ## Imports

  @max_arity 24

  @doc """
  Imports for every import of `module` that can be made up: host functions
  that return zeros, globals holding zero, memories and tables of the
  imported size when small. Others (tags, large memories) are left out, and
  instantiation fails with a `:link` error.
  """
  def stub_imports(module) do
    module
    |> Module.imports()
    |> Enum.reduce(%{}, fn {mod, name, type}, acc ->
      case stub(type) do
        nil -> acc
        value -> Map.update(acc, mod, %{name => value}, &Map.put(&1, name, value))
      end
    end)
  end

  defp stub({:func, params, results}) when length(params) <= @max_arity,
    do: {:fn, params, results, returning(length(params), Enum.map(results, &zero/1))}

  defp stub({:memory, %{min: min, max: max}}) when min <= 256,
    do: {:memory, min, if(is_integer(max) and max >= min, do: max)}

  defp stub({:table, %{element: element, min: min, max: max}}) when min <= 10_000,
    do: {:table, element, min, if(is_integer(max) and max >= min, do: max)}

  defp stub({:global, type, mutability}), do: {:global, type, zero(type), mutability}
  defp stub(_other), do: nil

  # A host function takes the caller and then one argument per parameter.
  for arity <- 0..@max_arity do
    ignored = for i <- 0..arity, do: Macro.var(:"_arg#{i}", __MODULE__)
    defp returning(unquote(arity), results), do: fn unquote_splicing(ignored) -> results end
  end

  ## Running a mutant

  @doc """
  Validates and compiles `bytes` on `engine`, reads the name of what
  compiles, instantiates it, calls every exported function and reads the
  other exports. `opts`: `:limits` (store
  options), `:call` (call options), `:max_calls`, `:calls_budget_ms` (no
  more calls once the mutant's calls took that long), `:slow_ms` (a call or
  instantiation that took longer is a hang).

  Returns `%{outcomes:, bugs:, slowest:}`: `outcomes` a list of
  `{stage, outcome}` to count, `bugs` a list of descriptions of what broke
  the rules (empty when all is well), `slowest` the longest instantiation
  or call in ms.
  """
  def run(bytes, engine, opts) do
    state = %{outcomes: [], bugs: [], opts: opts, spent: 0, slowest: 0}

    {_, state} =
      guard(state, :validate, nil, fn ->
        with :ok <- Module.validate(engine, bytes), do: {:ok, :ok}
      end)

    state =
      case guard(state, :compile, nil, fn -> Module.compile(engine, bytes) end) do
        {{:ok, module}, state} -> state |> read_name(module) |> instantiate(module)
        {_, state} -> state
      end

    %{outcomes: state.outcomes, bugs: Enum.reverse(state.bugs), slowest: state.slowest}
  end

  # The name section is custom: a damaged one is ignored, not an error.
  defp read_name(state, module) do
    {_, state} =
      guard(state, :name, nil, fn ->
        case Module.name(module) do
          name when is_nil(name) or is_binary(name) -> {:ok, name}
          other -> other
        end
      end)

    state
  end

  defp instantiate(state, module) do
    opts = state.opts

    imports =
      try do
        stub_imports(module)
      rescue
        e -> {:raised, Exception.format(:error, e, __STACKTRACE__)}
      end

    case imports do
      {:raised, text} ->
        bug(state, "making stub imports raised: #{text}")

      imports ->
        options = opts[:limits] ++ opts[:call]
        slow = opts[:slow_ms]

        case guard(state, :instantiate, slow, fn -> Instance.new(module, imports, options) end) do
          {{:ok, instance}, state} -> exercise(module, instance, state)
          {_, state} -> state
        end
    end
  end

  defp exercise(module, instance, state) do
    exports = Module.exports(module)
    {funcs, others} = Enum.split_with(exports, &match?({_, {:func, _, _}}, &1))
    {calls, skipped} = Enum.split(funcs, state.opts[:max_calls])
    state = Enum.reduce(calls, state, &call(instance, &1, &2))
    state = Enum.reduce(others, state, &read(instance, &1, &2))
    if skipped == [], do: state, else: count(state, :call, {:skipped, length(skipped)})
  end

  defp call(instance, {name, {:func, params, _results}}, state) do
    if state.spent >= state.opts[:calls_budget_ms] do
      count(state, :call, :over_budget)
    else
      args = Enum.map(params, &argument/1)
      started = System.monotonic_time(:millisecond)

      {_, state} =
        guard(state, {:call, name, args}, state.opts[:slow_ms], fn ->
          Instance.call(instance, name, args, state.opts[:call])
        end)

      %{state | spent: state.spent + System.monotonic_time(:millisecond) - started}
    end
  end

  defp read(instance, {name, {:global, _, _}}, state) do
    {_, state} =
      guard(state, {:read, name}, nil, fn ->
        with {:ok, g} <- Instance.global(instance, name), do: Global.get(g)
      end)

    state
  end

  defp read(instance, {name, {:memory, _}}, state) do
    {_, state} =
      guard(state, {:read, name}, nil, fn ->
        with {:ok, m} <- Instance.memory(instance, name),
             {:ok, size} <- Memory.size(m),
             do: Memory.read(m, max(size - 16, 0), min(size, 16))
      end)

    state
  end

  defp read(instance, {name, {:table, _}}, state) do
    {_, state} =
      guard(state, {:read, name}, nil, fn ->
        with {:ok, t} <- Instance.table(instance, name),
             {:ok, size} <- Table.size(t),
             do: Table.get(t, max(size - 1, 0))
      end)

    state
  end

  defp read(_instance, _export, state), do: state

  # Runs one API call: it must answer {:ok, _} or {:error, %Error{}} (not
  # a :panic or :poisoned one, which mean a bug in the native code), and,
  # with `slow` set, answer within `slow` ms.
  defp guard(state, what, slow, fun) do
    started = System.monotonic_time(:millisecond)

    result =
      try do
        fun.()
      rescue
        e -> {:raised, Exception.format(:error, e, __STACKTRACE__)}
      catch
        kind, value -> {:raised, Exception.format(kind, value, __STACKTRACE__)}
      end

    elapsed = System.monotonic_time(:millisecond) - started
    stage = if is_tuple(what), do: elem(what, 0), else: what

    state =
      case result do
        {:ok, _} ->
          count(state, stage, :ok)

        {:error, %Error{kind: kind} = e} when kind in [:panic, :poisoned] ->
          state |> count(stage, kind) |> bug("#{describe(what)} answered #{inspect(e)}")

        {:error, %Error{kind: :trap, trap: trap}} ->
          count(state, stage, {:trap, trap})

        {:error, %Error{kind: kind}} ->
          count(state, stage, kind)

        {:raised, text} ->
          state |> count(stage, :raised) |> bug("#{describe(what)} raised: #{text}")

        other ->
          state
          |> count(stage, :bad_answer)
          |> bug("#{describe(what)} answered #{inspect(other, limit: 20)}")
      end

    state =
      cond do
        slow == nil -> state
        elapsed > slow -> bug(state, "#{describe(what)} took #{elapsed} ms, past its timeout")
        true -> %{state | slowest: max(state.slowest, elapsed)}
      end

    {result, state}
  end

  defp describe({:call, name, args}), do: "call #{inspect(name)} #{inspect(args)}"
  defp describe({:read, name}), do: "reading export #{inspect(name)}"
  defp describe(stage), do: to_string(stage)

  defp count(state, stage, outcome), do: %{state | outcomes: [{stage, outcome} | state.outcomes]}
  defp bug(state, text), do: %{state | bugs: [text | state.bugs]}

  # Zero most of the time, sometimes a value at an edge.
  defp argument(type) do
    if :rand.uniform(4) == 1, do: one_of(edges(type)), else: zero(type)
  end

  defp zero(type) when type in [:i32, :i64, :v128], do: 0
  defp zero(type) when type in [:f32, :f64], do: 0.0
  defp zero(_ref), do: nil

  defp edges(:i32), do: [1, -1, 0x7FFF_FFFF, -0x8000_0000, 0xFFFF, 0x1_0000, 0xFFFF_FFF0]
  defp edges(:i64), do: [1, -1, 0x7FFF_FFFF_FFFF_FFFF, -0x8000_0000_0000_0000, 0x1_0000_0000]
  defp edges(:v128), do: [1, (1 <<< 128) - 1]
  defp edges(type) when type in [:f32, :f64], do: [-0.0, 1.0, :nan, :infinity, :neg_infinity]
  defp edges(_ref), do: [nil]
end
