defmodule Wasmbeam.Test.HexFiles do
  @moduledoc false
  # The files `mix hex.build` would put in a package, computed the way Hex
  # computes them (hexpm/hex, lib/mix/tasks/hex.build.ex: package/2,
  # expand_paths/2, dir_files/1): each `:files` entry is joined to the
  # project directory and expanded with Path.wildcard/1, directories are
  # walked with File.ls!/1 (dotfiles included, links not followed), and
  # paths matching an `:exclude_patterns` entry (or Hex's own .DS_Store
  # pattern) are dropped. Hex lists directories too; `files/2` keeps only
  # regular files, `entries/2` everything.

  @spec entries(keyword(), Path.t()) :: [Path.t()]
  def entries(package, dir) do
    expand_dir = Path.expand(dir)
    exclude_patterns = Keyword.get(package, :exclude_patterns, []) ++ [~r/\W\.DS_Store$/]

    package
    |> Keyword.fetch!(:files)
    |> Enum.map(&Path.join(dir, &1))
    |> Enum.flat_map(&Path.wildcard/1)
    |> Enum.flat_map(&dir_files/1)
    |> Enum.map(&Path.expand/1)
    |> Enum.uniq()
    |> Enum.map(&Path.relative_to(&1, expand_dir))
    |> Enum.reject(fn path -> Enum.any?(exclude_patterns, &(path =~ &1)) end)
  end

  @spec files(keyword(), Path.t()) :: [Path.t()]
  def files(package, dir),
    do: package |> entries(dir) |> Enum.filter(&File.regular?(Path.join(dir, &1)))

  # Hex refuses to build when a `:files` entry matches nothing.
  @spec missing(keyword(), Path.t()) :: [String.t()]
  def missing(package, dir),
    do: Enum.filter(package[:files], &(Path.wildcard(Path.join(dir, &1)) == []))

  defp dir_files(path) do
    case File.lstat(path) do
      {:ok, %File.Stat{type: :directory}} ->
        [
          path
          | path |> File.ls!() |> Enum.map(&Path.join(path, &1)) |> Enum.flat_map(&dir_files/1)
        ]

      _ ->
        [path]
    end
  end

  # Copies the package's files from `dir` into `dest`, as unpacking the
  # package would lay them out.
  @spec copy(keyword(), Path.t(), Path.t()) :: [Path.t()]
  def copy(package, dir, dest) do
    files = files(package, dir)

    for file <- files do
      target = Path.join(dest, file)
      File.mkdir_p!(Path.dirname(target))
      File.cp!(Path.join(dir, file), target)
    end

    files
  end
end
