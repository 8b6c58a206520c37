defmodule MyApp.ReadmeTest do
  # The README's Phoenix and Oban sections quote this app: every region of
  # lib/ between `# README: NAME` and `# README: end` must appear in
  # ../../README.md as it is (dedented), and those regions must be the
  # ones the README shows. The library's test/doc_snippets_test.exs checks
  # the other direction (each quoted block is in the file it names); the
  # other tests of this app run the code.
  use ExUnit.Case, async: true

  @root Path.expand("../../..", __DIR__)
  @app Path.expand("..", __DIR__)

  defp regions do
    for path <- Path.wildcard(Path.join(@app, "lib/**/*.ex")),
        {name, lines} <- regions(File.read!(path)),
        do: {Path.relative_to(path, @app), name, lines}
  end

  defp regions(text) do
    text
    |> String.split("\n")
    |> Enum.chunk_while(
      nil,
      fn line, acc ->
        case {String.trim(line), acc} do
          {"# README: end", {name, lines}} -> {:cont, {name, Enum.reverse(lines)}, nil}
          {"# README: " <> name, nil} -> {:cont, {name, []}}
          {_, nil} -> {:cont, nil}
          {_, {name, lines}} -> {:cont, {name, [line | lines]}}
        end
      end,
      fn acc -> {:cont, acc} end
    )
    |> Enum.reject(&is_nil/1)
  end

  defp dedent(lines) do
    lines =
      lines |> Enum.drop_while(&(&1 == "")) |> Enum.reverse() |> Enum.drop_while(&(&1 == ""))

    lines = Enum.reverse(lines)

    indent =
      lines
      |> Enum.reject(&(String.trim(&1) == ""))
      |> Enum.map(&(String.length(&1) - String.length(String.trim_leading(&1))))
      |> Enum.min()

    Enum.map_join(lines, "\n", &String.slice(&1, indent..-1//1))
  end

  test "the README quotes the application, the controller action and the worker as they are" do
    readme = File.read!(Path.join(@root, "README.md"))
    regions = regions()

    assert Enum.map(regions, fn {path, name, _} -> {path, name} end) |> Enum.sort() == [
             {"lib/my_app/application.ex", "application"},
             {"lib/my_app/workers/run_plugin.ex", "worker"},
             {"lib/my_app_web/controllers/plugin_controller.ex", "controller"}
           ]

    for {path, name, lines} <- regions do
      code = dedent(lines)

      assert readme =~ "# #{path}\n" <> code <> "\n```",
             "README.md does not quote the #{name} region of #{path} as it is:\n#{code}"
    end
  end
end
