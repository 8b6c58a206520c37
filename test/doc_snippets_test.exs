defmodule Wasmbeam.DocSnippetsTest do
  # Every ```elixir block of README.md and docs/**/*.md, one test each,
  # found anew at every run (see test/support/doc_snippets.ex for the
  # rules and the two markers). Not async: the blocks name processes,
  # start instances under Wasmbeam's supervisor and clear the module cache.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog

  alias Wasmbeam.Test.DocSnippets

  @moduletag timeout: 300_000

  @root Path.expand("..", __DIR__)

  for file <- DocSnippets.files(@root) do
    @external_resource Path.join(@root, file)
  end

  blocks = Enum.flat_map(DocSnippets.files(@root), &DocSnippets.blocks(@root, &1))

  for block <- blocks do
    where = "#{block.file}:#{block.line}"

    case block.marker do
      {:"not-executed", reason} ->
        IO.puts("doc snippets: #{where} is not executed (#{reason}); it is only parsed")

        test "#{where} (parsed only: #{reason})" do
          DocSnippets.parse!(unquote(Macro.escape(block)))
        end

      {:excerpt, what} ->
        dir = what |> String.split() |> hd()

        test "#{where} (quotes #{dir}, whose tests run it)" do
          block = unquote(Macro.escape(block))
          DocSnippets.parse!(block)
          DocSnippets.check_excerpt!(@root, block, unquote(dir))
        end

      {:needs, what} ->
        path = what |> String.split() |> hd()

        if File.exists?(Path.join(@root, path)) do
          test "#{where} (needs #{path})" do
            run(unquote(Macro.escape(block)))
          end
        else
          IO.puts("doc snippets: SKIPPED #{where}: it needs #{what}, which is absent")

          @tag skip: "needs #{what}"
          test "#{where} (needs #{path}: absent)" do
            :ok
          end
        end

      nil ->
        test where do
          run(unquote(Macro.escape(block)))
        end
    end
  end

  test "the Markdown files hold elixir blocks, and the README's run" do
    assert "README.md" in DocSnippets.files(@root)
    readme = DocSnippets.blocks(@root, "README.md")
    assert length(readme) >= 8
    # exemptions stay few, in all the files together
    exempt =
      @root
      |> DocSnippets.files()
      |> Enum.flat_map(&DocSnippets.blocks(@root, &1))
      |> Enum.filter(&match?(%{marker: {:"not-executed", _}}, &1))

    assert length(exempt) <= 5,
           "more than 5 blocks are not executed (#{Enum.map_join(exempt, ", ", &"#{&1.file}:#{&1.line}")}): " <>
             "make blocks runnable (a fixture from examples/ or test/fixtures) instead"
  end

  @tag :tmp_dir
  test "an excerpt block must quote its files as they are", %{tmp_dir: dir} do
    File.mkdir_p!(Path.join(dir, "app/lib"))

    File.write!(Path.join(dir, "app/lib/a.ex"), """
    defmodule A do
      def one, do: 1

      def two do
        2
      end
    end
    """)

    File.write!(Path.join(dir, "README.md"), """
    <!-- excerpt: app (its tests run it) -->
    ```elixir
    # lib/a.ex
    def one, do: 1

    def two do
      2
    end
    ```

    <!-- excerpt: app -->
    ```elixir
    # lib/a.ex
    def two do
      3
    end
    ```

    <!-- excerpt: app -->
    ```elixir
    # lib/b.ex
    def b, do: :b
    ```

    <!-- excerpt: app -->
    ```elixir
    def one, do: 1
    ```
    """)

    assert [good, changed, missing, headless] = DocSnippets.blocks(dir, "README.md")
    assert %{marker: {:excerpt, "app (its tests run it)"}} = good
    assert DocSnippets.check_excerpt!(dir, good, "app") == :ok

    error =
      assert_raise ExUnit.AssertionError, fn ->
        DocSnippets.check_excerpt!(dir, changed, "app")
      end

    assert error.message =~ "README.md:13"
    assert error.message =~ "not in app/lib/a.ex as it is"

    error =
      assert_raise ExUnit.AssertionError, fn ->
        DocSnippets.check_excerpt!(dir, missing, "app")
      end

    assert error.message =~ "app/lib/b.ex, which does not exist"

    error =
      assert_raise ExUnit.AssertionError, fn ->
        DocSnippets.check_excerpt!(dir, headless, "app")
      end

    assert error.message =~ "starts with a `# PATH` line"
  end

  @tag :tmp_dir
  test "the runner checks results, exceptions and inspect output, and reports the line", %{
    tmp_dir: dir
  } do
    File.write!(Path.join(dir, "README.md"), ~S"""
    Text.

    ```elixir
    iex> x = 1 +
    ...>   1
    iex> x * 2
    4
    iex> Wasmbeam.Error.new(:timeout, "late")
    #Wasmbeam.Error<timeout: late>
    iex> raise ArgumentError, "nope"
    ** (ArgumentError) no
    ```

    <!-- not-executed: a fragment -->
    ```elixir
    {:wasmbeam, "~> 0.1"}
    ```

    ```elixir
    # config/runtime.exs
    config :app, env: config_env(), url: System.get_env("WASMBEAM_NO_SUCH_VARIABLE", "x")
    ```

    ```elixir
    config :app,
      port: String.to_integer("eighty")
    ```

    ```elixir
    iex> 1 + 1
    3
    ```

      ```elixir
      :ok = :ok
      raise "boom"
      ```
    """)

    assert [good, fragment, config, bad_config, wrong, plain] =
             DocSnippets.blocks(dir, "README.md")

    assert %{kind: :iex, line: 4, marker: nil} = good
    assert %{kind: :plain, marker: {:"not-executed", "a fragment"}} = fragment
    assert %{kind: :config, marker: nil} = config
    assert %{kind: :config, line: 25} = bad_config
    assert %{kind: :plain, line: 35, code: ":ok = :ok\nraise \"boom\""} = plain

    assert_raise ExUnit.AssertionError,
                 ~r/README.md:10: expected \*\* \(ArgumentError\) no\n\s+got \*\* \(ArgumentError\) nope/,
                 fn ->
                   DocSnippets.run!(good)
                 end

    assert :ok = DocSnippets.run!(%{good | code: String.replace(good.code, ") no", ") nope")})
    assert :ok = DocSnippets.parse!(fragment)
    # evaluated as Mix reads config files, and not applied
    assert :ok = DocSnippets.run!(config)
    assert Application.get_env(:app, :env) == nil

    assert_raise ExUnit.AssertionError,
                 ~r/README.md:25: raised \*\* \(ArgumentError\)/,
                 fn -> DocSnippets.run!(bad_config) end

    assert_raise ExUnit.AssertionError, ~r/README.md:30: .*expected 3\n\s+got +2/s, fn ->
      DocSnippets.run!(wrong)
    end

    assert_raise ExUnit.AssertionError, ~r/README.md:35: raised \*\* \(RuntimeError\) boom/, fn ->
      DocSnippets.run!(plain)
    end
  end

  defp run(block) do
    File.cd!(@root, fn ->
      capture_log(fn -> DocSnippets.run!(block) end)
    end)
  end
end
