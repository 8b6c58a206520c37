defmodule Wasmbeam.Bench.WasiPrograms do
  @moduledoc """
  The WASI programs of `bench/wasi_p2.exs`, as preview-1 core modules and
  as preview-2 command components, built into ignored folders (never
  committed) when missing or older than their sources:

    * CPython 3.11 (`bin/fetch-wasm python`) and its component,
      `.cache/wasm/python-3.11.3.component.wasm`;
    * C programs (`test/fixtures/wasi/wasi_tool.c`,
      `bench/fixtures/write_stdout.c`) built as the tests build them
      (`test/support/wasi_fixtures.ex`: Debian's clang and wasi-libc,
      `-O2`), into `_build/<env>/bench_wasi`, with their components beside.

  A component is the preview-1 program made into one with Wasmtime's
  preview-1 adapter, exactly as the tests do it:

      wasm-tools component new core.wasm \\
        --adapt wasi_snapshot_preview1=.cache/tools/wasi_snapshot_preview1.command.wasm \\
        -o core.component.wasm

  (`bin/setup --component-tools` installs `wasm-tools` into
  `.cache/tools/bin` and fetches the adapter.) `test/support` is not on the
  code path outside the test environment, hence this module.
  """

  @root Path.expand("../..", __DIR__)
  @adapter Path.join(@root, ".cache/tools/wasi_snapshot_preview1.command.wasm")
  @sources %{
    "wasi_tool" => Path.join(@root, "test/fixtures/wasi/wasi_tool.c"),
    "write_stdout" => Path.join(@root, "bench/fixtures/write_stdout.c")
  }

  @doc "The preview-1 CPython, downloaded by `bin/fetch-wasm python` if missing."
  @spec python!() :: Path.t()
  def python! do
    {path, 0} = System.cmd(Path.join(@root, "bin/fetch-wasm"), ["python"], cd: @root)
    Path.expand(String.trim(path), @root)
  end

  @doc "CPython made a preview-2 command component with the adapter."
  @spec python_component!() :: Path.t()
  def python_component! do
    core = python!()
    adapt!(core, Path.rootname(core) <> ".component.wasm")
  end

  @doc "The preview-1 build of C program `name` (`wasi_tool` or `write_stdout`)."
  @spec core!(String.t()) :: Path.t()
  def core!(name) do
    source = Map.fetch!(@sources, name)
    dir = Path.join(Mix.Project.build_path(), "bench_wasi")
    target = Path.join(dir, name <> ".wasm")
    File.mkdir_p!(dir)

    unless fresh?(target, [source]) do
      tmp = target <> ".#{System.unique_integer([:positive])}"
      clang = System.find_executable("clang") || raise "clang is missing: run bin/setup"
      args = ["--target=wasm32-wasi", "--sysroot=/usr", "-O2", "-Wall", "-Werror"]

      case System.cmd(clang, args ++ [source, "-o", tmp], stderr_to_stdout: true) do
        {_, 0} -> File.rename!(tmp, target)
        {out, status} -> raise "building #{source} failed (#{status}):\n#{out}"
      end
    end

    target
  end

  @doc "C program `name` as a preview-2 command component."
  @spec component!(String.t()) :: Path.t()
  def component!(name) do
    core = core!(name)
    adapt!(core, Path.rootname(core) <> ".component.wasm")
  end

  @doc "The adapter's version (the Wasmtime release it comes from)."
  @spec adapter_version() :: String.t()
  def adapter_version do
    case File.read(@adapter <> ".version") do
      {:ok, text} -> String.trim(text)
      {:error, _} -> "unknown"
    end
  end

  defp adapt!(core, target) do
    File.regular?(@adapter) ||
      raise "#{@adapter} is missing: run bin/setup --component-tools"

    unless fresh?(target, [core, @adapter]) do
      tmp = target <> ".#{System.unique_integer([:positive])}"
      args = ["component", "new", core, "--adapt", "wasi_snapshot_preview1=" <> @adapter]

      case System.cmd(wasm_tools!(), args ++ ["-o", tmp], stderr_to_stdout: true) do
        {_, 0} -> File.rename!(tmp, target)
        {out, status} -> raise "wasm-tools component new #{core} failed (#{status}):\n#{out}"
      end
    end

    target
  end

  defp wasm_tools! do
    local = Path.join(@root, ".cache/tools/bin/wasm-tools")

    cond do
      File.regular?(local) -> local
      path = System.find_executable("wasm-tools") -> path
      true -> raise "wasm-tools is missing: run bin/setup --component-tools"
    end
  end

  defp fresh?(target, sources) do
    case File.stat(target, time: :posix) do
      {:ok, %{mtime: built}} ->
        Enum.all?(sources, fn source -> File.stat!(source, time: :posix).mtime <= built end)

      {:error, _} ->
        false
    end
  end
end
