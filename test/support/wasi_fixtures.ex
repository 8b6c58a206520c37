defmodule Wasmbeam.Test.WasiFixtures do
  @moduledoc false
  # Builds the C programs of test/fixtures/wasi into WASI modules with
  # Debian's clang and wasi-libc (installed by bin/setup), once per source
  # change, into _build/<env>/wasi_fixtures.

  @source_dir Path.expand("../fixtures/wasi", __DIR__)

  @doc "The path of the built fixture `name` (the C file's base name)."
  @spec path!(String.t()) :: Path.t()
  def path!(name) do
    source = Path.join(@source_dir, name <> ".c")
    out_dir = Path.join(Mix.Project.build_path(), "wasi_fixtures")
    target = Path.join(out_dir, name <> ".wasm")
    File.mkdir_p!(out_dir)

    unless fresh?(target, source) do
      # Build to a temporary name: tests run concurrently.
      tmp = target <> ".#{System.unique_integer([:positive])}"

      args = [
        "--target=wasm32-wasi",
        "--sysroot=/usr",
        "-O2",
        "-Wall",
        "-Werror",
        source,
        "-o",
        tmp
      ]

      case System.cmd(clang!(), args, stderr_to_stdout: true) do
        {_, 0} -> File.rename!(tmp, target)
        {out, status} -> raise "building #{name}.c failed (#{status}):\n#{out}"
      end
    end

    target
  end

  @doc """
  The path of fixture `name` as a WASI preview-2 command component: the
  preview-1 program made into a component with Wasmtime's preview-1
  adapter (`wasm-tools component new --adapt`; `bin/setup
  --component-tools` fetches the adapter).
  """
  @spec component_path!(String.t()) :: Path.t()
  def component_path!(name) do
    core = path!(name)
    adapter = adapter!()
    target = Path.rootname(core) <> ".component.wasm"

    unless fresh?(target, core) and fresh?(target, adapter) do
      tmp = target <> ".#{System.unique_integer([:positive])}"

      Wasmbeam.ComponentFixtures.wasm_tools!([
        "component",
        "new",
        core,
        "--adapt",
        "wasi_snapshot_preview1=" <> adapter,
        "-o",
        tmp
      ])

      File.rename!(tmp, target)
    end

    target
  end

  defp adapter! do
    path = Path.expand("../../.cache/tools/wasi_snapshot_preview1.command.wasm", __DIR__)

    File.regular?(path) ||
      raise "Wasmtime's WASI preview-1 adapter is missing: run bin/setup --component-tools"

    path
  end

  defp fresh?(target, source) do
    case {File.stat(target, time: :posix), File.stat!(source, time: :posix)} do
      {{:ok, %{mtime: built}}, %{mtime: changed}} -> built >= changed
      _ -> false
    end
  end

  defp clang! do
    System.find_executable("clang") ||
      raise "clang is needed to build the WASI test fixtures: run bin/setup"
  end
end
