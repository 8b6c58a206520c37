defmodule Wasmbeam.Test.DocSnippets do
  @moduledoc false
  # Finds the ```elixir blocks of Markdown files and runs them, so that
  # the README and docs/ cannot say what the code no longer does
  # (test/doc_snippets_test.exs makes one test per block).
  #
  # A block whose first line starts with `iex>` is a transcript, read as
  # ExUnit reads doctests: `iex>` starts an expression, `...>` continues
  # it, and the lines after it (up to a blank line or the next `iex>`) are
  # its expected result: evaluated and compared with `===`, or, when they
  # contain `#Name<`, compared with `inspect/1` of the value, or, when they
  # start with `** (Module) message`, the exception it must raise.
  # Variables, aliases and requires carry over from one expression to the
  # next. A block whose first line of code (after comments) is a
  # `config` call or `import Config` is a configuration fragment
  # (config/config.exs, config/runtime.exs): it is evaluated as Mix reads
  # such a file, with Config.Reader (Config imported, config_env() :prod),
  # and must not raise; nothing of it is applied. Any other block is
  # evaluated as a whole and must not raise.
  #
  # An HTML comment on the line(s) before a block changes that:
  #
  #   <!-- not-executed: REASON -->  the block is only parsed (a mix.exs
  #                                  fragment, code that needs Phoenix or
  #                                  Oban); keep these few
  #   <!-- needs: PATH (HOW) -->     the block runs only when PATH exists;
  #                                  the test output says when it did not
  #   <!-- excerpt: DIR (WHY) -->    the block quotes a project's code: it
  #                                  is made of sections, each starting
  #                                  with a `# PATH` line (PATH relative to
  #                                  DIR), and each section must appear in
  #                                  that file as it is (at any one
  #                                  indentation); the project's own tests
  #                                  run the code (examples/phoenix_app:
  #                                  code that needs Phoenix or Oban)

  defmodule Block do
    @moduledoc false
    defstruct [:file, :line, :code, :kind, :marker]
  end

  @fence_open ~r/^(\s*)```elixir\s*$/
  @fence_close ~r/^\s*```\s*$/
  @marker ~r/^\s*<!--\s*(not-executed|needs|excerpt):\s*(.*?)\s*-->\s*$/

  @doc "The Markdown files whose blocks run: README.md and docs/**/*.md."
  @spec files(Path.t()) :: [Path.t()]
  def files(root) do
    ["README.md" | Path.wildcard(Path.join(root, "docs/**/*.md"))]
    |> Enum.map(&Path.relative_to(Path.expand(&1, root), root))
    |> Enum.filter(&File.exists?(Path.join(root, &1)))
    |> Enum.uniq()
  end

  @doc "The ```elixir blocks of `file` (relative to `root`)."
  @spec blocks(Path.t(), Path.t()) :: [%Block{}]
  def blocks(root, file) do
    root
    |> Path.join(file)
    |> File.read!()
    |> String.split("\n")
    |> Enum.with_index(1)
    |> scan(file, nil, [])
  end

  defp scan([], _file, _marker, acc), do: Enum.reverse(acc)

  defp scan([{line, number} | rest], file, marker, acc) do
    cond do
      match = Regex.run(@marker, line) ->
        [_, kind, text] = match
        scan(rest, file, {String.to_atom(kind), text}, acc)

      match = Regex.run(@fence_open, line) ->
        [_, indent] = match
        {code_lines, rest} = Enum.split_while(rest, fn {l, _} -> not (l =~ @fence_close) end)

        code =
          Enum.map_join(code_lines, "\n", fn {l, _} -> String.replace_prefix(l, indent, "") end)

        block = %Block{
          file: file,
          line: number + 1,
          code: code,
          kind: kind(code),
          marker: marker
        }

        scan(Enum.drop(rest, 1), file, nil, [block | acc])

      String.trim(line) == "" ->
        scan(rest, file, marker, acc)

      true ->
        # A marker belongs to the block right after it.
        scan(rest, file, nil, acc)
    end
  end

  @section_header ~r/^# (\S+\.exs?)\s*$/

  @doc """
  Checks that `block` (marked `<!-- excerpt: DIR ... -->`) quotes files of
  `root/DIR`: each `# PATH` section appears in `DIR/PATH` verbatim, at one
  indentation. Raises `ExUnit.AssertionError` naming the block otherwise.
  """
  @spec check_excerpt!(Path.t(), %Block{}, Path.t()) :: :ok
  def check_excerpt!(root, %Block{} = block, dir) do
    sections = sections(String.split(block.code, "\n"), nil, [])

    if sections == [] do
      flunk!(
        block,
        block.line,
        "an excerpt block starts with a `# PATH` line naming the file it quotes"
      )
    end

    for {path, lines} <- sections do
      file = Path.join([root, dir, path])

      unless File.exists?(file) do
        flunk!(block, block.line, "it quotes #{Path.join(dir, path)}, which does not exist")
      end

      file_lines = file |> File.read!() |> String.split("\n")

      unless quoted?(file_lines, lines) do
        flunk!(
          block,
          block.line,
          "this part of it is not in #{Path.join(dir, path)} as it is:\n" <>
            Enum.join(lines, "\n")
        )
      end
    end

    :ok
  end

  defp sections([], nil, acc), do: Enum.reverse(acc)
  defp sections([], {path, lines}, acc), do: sections([], nil, [{path, trim_blank(lines)} | acc])

  defp sections([line | rest], current, acc) do
    case {Regex.run(@section_header, line), current} do
      {[_, path], nil} -> sections(rest, {path, []}, acc)
      {[_, path], {done, lines}} -> sections(rest, {path, []}, [{done, trim_blank(lines)} | acc])
      {nil, nil} -> if String.trim(line) == "", do: sections(rest, nil, acc), else: []
      {nil, {path, lines}} -> sections(rest, {path, [line | lines]}, acc)
    end
  end

  # Reversed lines in, lines out, without blank lines at either end.
  defp trim_blank(reversed) do
    reversed
    |> Enum.drop_while(&(String.trim(&1) == ""))
    |> Enum.reverse()
    |> Enum.drop_while(&(String.trim(&1) == ""))
  end

  defp quoted?(_file_lines, []), do: false

  defp quoted?(file_lines, [first | _] = lines) do
    count = length(lines)

    file_lines
    |> Enum.with_index()
    |> Enum.any?(fn {line, index} ->
      indent =
        String.slice(line, 0, String.length(line) - String.length(String.trim_leading(line)))

      String.trim_leading(line) == first and
        index + count <= length(file_lines) and
        file_lines
        |> Enum.slice(index, count)
        |> Enum.zip(lines)
        |> Enum.all?(fn {have, want} ->
          (want == "" and String.trim(have) == "") or have == indent <> want
        end)
    end)
  end

  defp kind(code) do
    first_code_line =
      code
      |> String.split("\n")
      |> Enum.map(&String.trim/1)
      |> Enum.find("", &(&1 != "" and not String.starts_with?(&1, "#")))

    cond do
      code |> String.trim_leading() |> String.starts_with?("iex>") -> :iex
      first_code_line =~ ~r/^(config[ (]|import Config\b)/ -> :config
      true -> :plain
    end
  end

  @doc "Runs a block; raises `ExUnit.AssertionError` naming its file and line."
  @spec run!(%Block{}) :: :ok
  def run!(%Block{kind: :config} = block) do
    # Config imported on the block's first line, not a line of its own,
    # so that an error's line (counted from 1 by Config.Reader, which takes
    # no starting line) is still the line within the block.
    code =
      if block.code =~ ~r/^\s*import Config\b/m,
        do: block.code,
        else: "import Config; " <> block.code

    try do
      Config.Reader.eval!(block.file, code, env: :prod, target: :host)
    rescue
      error ->
        flunk!(block, block.line, raised(block, :error, error, __STACKTRACE__))
    end

    :ok
  end

  def run!(%Block{kind: :plain} = block) do
    try do
      Code.eval_string(block.code, [], file: block.file, line: block.line)
    rescue
      error ->
        flunk!(block, block.line, raised(block, :error, error, __STACKTRACE__))
    catch
      kind, reason -> flunk!(block, block.line, raised(block, kind, reason, __STACKTRACE__))
    end

    :ok
  end

  def run!(%Block{kind: :iex} = block) do
    env = Code.env_for_eval(file: block.file, line: block.line)

    block.code
    |> steps(block.line)
    |> Enum.reduce({[], env}, fn step, {binding, env} -> run_step(block, step, binding, env) end)

    :ok
  end

  @doc "Parses a block without running it (for `not-executed` blocks)."
  @spec parse!(%Block{}) :: :ok
  def parse!(%Block{} = block) do
    code =
      if block.kind == :iex,
        do: block.code |> steps(block.line) |> Enum.map_join("\n", & &1.code),
        else: block.code

    case Code.string_to_quoted(code, file: block.file, line: block.line) do
      {:ok, _} -> :ok
      {:error, reason} -> flunk!(block, block.line, "does not parse: #{inspect(reason)}")
    end
  end

  # {code, line, expected} for each `iex>` expression.
  defp steps(code, first_line) do
    code
    |> String.split("\n")
    |> Enum.with_index(first_line)
    |> Enum.reduce([], fn {line, number}, acc ->
      trimmed = String.trim_leading(line)

      cond do
        String.starts_with?(trimmed, "iex>") ->
          [%{code: strip(trimmed, "iex>"), line: number, expected: []} | acc]

        String.starts_with?(trimmed, "...>") and match?([%{expected: []} | _], acc) ->
          [step | rest] = acc
          [%{step | code: step.code <> "\n" <> strip(trimmed, "...>")} | rest]

        trimmed == "" ->
          case acc do
            [%{expected: [_ | _]} = step | rest] -> [%{step | expected: :done} | rest]
            _ -> acc
          end

        true ->
          case acc do
            [%{expected: expected} = step | rest] when is_list(expected) ->
              [%{step | expected: expected ++ [line]} | rest]

            _ ->
              raise ArgumentError, "line #{number}: text outside an iex> expression: #{line}"
          end
      end
    end)
    |> Enum.reverse()
    |> Enum.map(fn step ->
      expected = if is_list(step.expected), do: step.expected, else: []
      %{step | expected: expected |> Enum.join("\n") |> String.trim()}
    end)
  end

  defp strip(line, prompt),
    do: line |> String.replace_prefix(prompt, "") |> String.replace_prefix(" ", "")

  defp run_step(block, %{expected: "** (" <> _ = expected} = step, binding, env) do
    [_, module, message] = Regex.run(~r/^\*\* \((\S+)\) (.*)$/s, expected)

    try do
      eval(step, binding, env)
    rescue
      error ->
        got = inspect(error.__struct__)
        got_message = Exception.message(error)

        unless got == module and String.trim(got_message) == String.trim(message),
          do:
            flunk!(
              block,
              step.line,
              "expected ** (#{module}) #{message}\n  got ** (#{got}) #{got_message}"
            )

        {binding, env}
    else
      {value, _binding, _env} ->
        flunk!(block, step.line, "expected ** (#{module}) #{message}\n  got #{inspect(value)}")
    end
  end

  defp run_step(block, step, binding, env) do
    {value, binding, env} =
      try do
        eval(step, binding, env)
      rescue
        error ->
          flunk!(
            block,
            step.line,
            "#{step.code}\n  " <> raised(block, :error, error, __STACKTRACE__)
          )
      end

    cond do
      step.expected == "" ->
        :ok

      step.expected =~ ~r/#[A-Z][\w.]*</ ->
        got = inspect(value, limit: :infinity, printable_limit: :infinity)

        unless squeeze(got) == squeeze(step.expected),
          do:
            flunk!(
              block,
              step.line,
              "#{step.code}\n  expected #{step.expected}\n  got      #{got}"
            )

      true ->
        {expected, _, _} =
          case Code.string_to_quoted(step.expected, file: block.file, line: step.line + 1) do
            {:ok, quoted} ->
              Code.eval_quoted_with_env(quoted, binding, env)

            {:error, reason} ->
              flunk!(block, step.line, "the expected result does not parse: #{inspect(reason)}")
          end

        unless expected === value,
          do:
            flunk!(
              block,
              step.line,
              "#{step.code}\n  expected #{inspect(expected)}\n  got      #{inspect(value)}"
            )
    end

    {binding, env}
  end

  defp eval(step, binding, env) do
    quoted = Code.string_to_quoted!(step.code, file: env.file, line: step.line)
    Code.eval_quoted_with_env(quoted, binding, %{env | line: step.line})
  end

  # The exception and the frames in the snippet itself.
  defp raised(block, kind, reason, stacktrace) do
    frames =
      for {_, _, _, location} = frame <- stacktrace,
          to_string(location[:file]) == block.file,
          do: "\n      " <> Exception.format_stacktrace_entry(frame)

    "raised " <> Exception.format_banner(kind, reason, stacktrace) <> Enum.join(frames)
  end

  defp squeeze(text), do: text |> String.split() |> Enum.join(" ")

  defp flunk!(block, line, message) do
    raise ExUnit.AssertionError,
      message:
        "#{block.file}:#{line}: #{message}\n\n" <>
          "Every ```elixir block of README.md and docs/ runs in test/doc_snippets_test.exs. " <>
          "Fix the block (or the code), or, if it cannot run here, put " <>
          "<!-- not-executed: REASON --> or <!-- needs: PATH (HOW TO GET IT) --> on the line before it."
  end
end
