defmodule Wasmbeam.PackageTest do
  # The Hex package and docs metadata in mix.exs, checked without Hex or
  # ExDoc (neither can be installed here): the package's files are expanded
  # as Hex expands them (Wasmbeam.Test.HexFiles).
  use ExUnit.Case, async: true

  alias Wasmbeam.Test.HexFiles

  @root Path.expand("../..", __DIR__)

  defp config, do: Mix.Project.config()
  defp package, do: config()[:package]

  defp git_files(pathspec) do
    {out, 0} = System.cmd("git", ["ls-files", "--", pathspec], cd: @root)
    String.split(out, "\n", trim: true)
  end

  test "the package has what a user's machine needs to build and use Wasmbeam" do
    files = HexFiles.files(package(), @root)
    assert HexFiles.missing(package(), @root) == []

    required =
      (~w(mix.exs .formatter.exs README.md LICENSE CHANGELOG.md Cargo.toml Cargo.lock) ++
         Path.wildcard(Path.join(@root, "lib/**/*.ex")))
      |> Enum.map(&Path.relative_to(&1, @root))

    # Every member of the cargo workspace, with its sources: cargo refuses
    # to build any crate of a workspace whose member is missing.
    {:ok, workspace} = File.read(Path.join(@root, "Cargo.toml"))
    [_, members] = Regex.run(~r/members\s*=\s*\[([^\]]*)\]/, workspace)
    members = Regex.scan(~r/"([^"]+)"/, members) |> Enum.map(&List.last/1)
    assert "native/wasmbeam" in members

    crate_files =
      Enum.flat_map(members, fn member ->
        [Path.join(member, "Cargo.toml") | git_files(Path.join(member, "src"))]
      end)

    assert crate_files -- files == []
    assert required -- files == []
  end

  test "the package leaves out build output, caches, tests and scratch files" do
    files = HexFiles.entries(package(), @root)

    # On this machine the built NIF exists: it must not be packaged.
    assert File.regular?(Path.join(@root, "priv/native/libwasmbeam.so"))

    for file <- files do
      refute file =~ ~r{(^|/)(target|_build[^/]*|\.cache|tmp|deps)(/|$)}, file
      refute String.starts_with?(file, "priv/native"), file
      refute file =~ ~r/\.(so|dylib|dll|beam|tar\.gz)$/, file
      refute String.starts_with?(file, "test/"), file
    end
  end

  @tag :tmp_dir
  test "the exclusions hold where a listed directory holds build output", %{tmp_dir: dir} do
    planted = %{
      "lib/a.ex" => true,
      "native/x/Cargo.toml" => true,
      "native/x/src/lib.rs" => true,
      "native/x/src/target/release/libx.so" => false,
      "native/x/src/stray.so" => false,
      "native/x/src/_build/dev/lib/x.beam" => false,
      "native/x/src/.cache/y" => false,
      "docs/guide.md" => true
    }

    for {file, _} <- planted do
      File.mkdir_p!(Path.dirname(Path.join(dir, file)))
      File.write!(Path.join(dir, file), "")
    end

    files = HexFiles.files(package(), dir)

    for {file, included?} <- planted do
      assert file in files == included?,
             "#{file} should #{if included?, do: "", else: "not "}be packaged"
    end
  end

  test "the metadata Hex requires is there" do
    assert config()[:version] =~ ~r/^\d+\.\d+\.\d+/
    assert is_binary(config()[:description]) and String.length(config()[:description]) <= 300
    assert package()[:licenses] == ["Apache-2.0"]
    assert %{"Source" => _} = package()[:links]
    license = File.read!(Path.join(@root, "LICENSE"))
    assert license =~ "Copyright 2026 The Wasmbeam authors"
    assert license =~ "Apache License\n                           Version 2.0, January 2004"
    assert license =~ "END OF TERMS AND CONDITIONS"
    assert File.read!(Path.join(@root, "CHANGELOG.md")) =~ "## [#{config()[:version]}]"
  end

  test "the docs config names files and modules that exist, as ExDoc needs" do
    docs = config()[:docs]
    extras = docs[:extras]
    assert "README.md" in extras
    # ExDoc names an extra page after its file: README.md becomes "readme".
    assert docs[:main] == "readme"

    for extra <- extras, do: assert(File.regular?(Path.join(@root, extra)), extra)

    for {_group, extras_in_group} <- docs[:groups_for_extras],
        extra <- extras_in_group,
        do: assert(extra in extras)

    modules = for {_group, entries} <- docs[:groups_for_modules], entry <- entries, do: entry

    for module <- modules, is_atom(module) do
      assert Code.ensure_loaded?(module), "#{inspect(module)} does not exist"
      assert {:docs_v1, _, _, _, moduledoc, _, _} = Code.fetch_docs(module)
      assert moduledoc != :hidden, "#{inspect(module)} is hidden from the docs"
    end
  end

  test "the release guide's Dockerfile is examples/release/Dockerfile, Rust in its build stage only" do
    guide = File.read!(Path.join(@root, "docs/RELEASES.md"))
    [_, in_guide] = Regex.run(~r/```dockerfile\n(.*?)```/s, guide)
    dockerfile = File.read!(Path.join(@root, "examples/release/Dockerfile"))
    assert in_guide == dockerfile

    [build, runtime] = String.split(dockerfile, ~r/^FROM .* AS runtime$/m)
    assert build =~ "FROM debian:bookworm-slim AS build"
    assert build =~ "sh.rustup.rs"
    assert build =~ "RUN mix wasmbeam.precompile"
    assert build =~ "RUN mix release"
    refute runtime =~ ~r/rust|cargo|elixir|mix /i
    assert runtime =~ "COPY --from=build --chown=app:app"
    assert runtime =~ "USER app"
  end
end
