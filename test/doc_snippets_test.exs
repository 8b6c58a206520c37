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
    # exemptions stay few
    assert Enum.count(readme, &match?(%{marker: {:"not-executed", _}}, &1)) <= 5
  end

  defp run(block) do
    File.cd!(@root, fn ->
      capture_log(fn -> DocSnippets.run!(block) end)
    end)
  end
end
