defmodule Wasmbeam.ComponentFixtures do
  @moduledoc """
  WebAssembly components for tests and benchmarks, built from the sources in
  `test/fixtures/components/<name>/` (one WIT world and one C file each).

  No `.wasm` is checked in: `path!/1` builds the component the first time it
  is asked for, and again whenever its sources or the tools change, into the
  ignored `.cache/components/<name>.wasm`. A build is

      wit-bindgen c             WIT -> <world>.c, <world>.h and <world>_component_type.o
      clang --target=wasm32-wasi  bindings + fixture -> core module (the .o carries
                                the WIT world in a custom section: no `component embed`)
      wasm-tools component new  core module -> component
      wasm-tools validate       check the result

  The guests use wasi-libc only for `malloc`, `free` and `memcpy` and have no
  WASI preview-1 imports, so no WASI adapter is involved: a component imports
  exactly what its WIT world says. A world that imports WASI preview-2
  interfaces (`net_probe`) is resolved against the WASI WIT of the
  wasmtime-wasi crate the NIF is built with, read from cargo's registry.

  `bin/setup --component-tools` (which `bin/test` runs) installs the pinned tools into `.cache/tools/bin` (`wasm-tools`
  and `wit-bindgen`, from crates.io) and clang with wasi-libc (from Debian).
  Tools found there are preferred over those on `PATH`.

  The build of a fixture is serialised within one VM, and the output is
  written to a temporary file and renamed, so that concurrent tests and two
  test runs at once (say Elixir 1.14 and 1.18 on the same checkout) never see
  a half-written component.

  ## Example

      path = Wasmbeam.ComponentFixtures.path!("types")
      bytes = File.read!(path)
  """

  @root Path.expand("../..", __DIR__)
  @source_root Path.join(@root, "test/fixtures/components")
  @cache_dir Path.join(@root, ".cache/components")
  @tools_dir Path.join(@root, ".cache/tools/bin")

  # Part of the fingerprint: changing a flag rebuilds every fixture.
  # No start files and no entry point: a library of exports, not a command.
  # Debian's wasi-libc carries DWARF; drop it (the name section stays, for
  # backtraces with function names).
  @cflags ~w(--target=wasm32-wasi -O2 -Wall -Werror -nostartfiles -Wl,--no-entry -Wl,--strip-debug)

  @doc "The names of the fixtures (the folders of `test/fixtures/components`)."
  @spec names() :: [String.t()]
  def names do
    @source_root
    |> File.ls!()
    |> Enum.filter(&File.dir?(Path.join(@source_root, &1)))
    |> Enum.sort()
  end

  @doc """
  The path of the component built from fixture `name`, built first if it is
  missing or stale. Raises if a tool is missing (naming it and `bin/setup`)
  or if the build fails (with the failing command's output).
  """
  @spec path!(String.t()) :: Path.t()
  def path!(name) when is_binary(name) do
    sources = sources!(name)
    target = Path.join(@cache_dir, name <> ".wasm")
    stamp = target <> ".fingerprint"
    fingerprint = fingerprint(sources)

    if fresh?(target, stamp, fingerprint) do
      target
    else
      :global.trans({{__MODULE__, name}, self()}, fn ->
        # Another process of this VM may have built it while we waited.
        unless fresh?(target, stamp, fingerprint) do
          build!(name, sources, target, stamp, fingerprint)
        end

        target
      end)
    end
  end

  @doc """
  Imports for the `types` fixture: host functions that answer what they
  were given, each reporting it to `test_pid` as
  `{:host_saw, name, value}`.
  """
  @spec types_imports(pid()) :: map()
  def types_imports(test_pid) do
    names = [
      "echo-bool",
      "echo-s8",
      "echo-u8",
      "echo-s16",
      "echo-u16",
      "echo-s32",
      "echo-u32",
      "echo-s64",
      "echo-u64",
      "echo-f32",
      "echo-f64",
      "echo-char",
      "echo-string",
      "echo-bytes",
      "echo-strings",
      "echo-nested-list",
      "echo-tuple",
      "echo-point",
      "echo-segment",
      "echo-color",
      "echo-shape",
      "echo-permissions",
      "echo-wide-flags",
      "echo-option",
      "echo-nested-option",
      "echo-result",
      "echo-result-err-only",
      "echo-result-ok-only",
      "echo-result-empty"
    ]

    host =
      Map.new(names, fn name ->
        {name,
         fn _caller, x ->
           send(test_pid, {:host_saw, name, x})
           x
         end}
      end)
      |> Map.put("echo-many", fn _caller, a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p ->
        inspect([a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p])
      end)
      |> Map.put("nothing", fn _caller -> :ok end)

    %{"wasmbeam:test/host@0.1.0" => host, "greeting" => fn _caller -> "Hello" end}
  end

  @doc "The WIT text of fixture `name` (its world and interfaces)."
  @spec wit!(String.t()) :: String.t()
  def wit!(name) when is_binary(name) do
    name |> wit_path!() |> File.read!()
  end

  @doc "The path of the WIT file of fixture `name`."
  @spec wit_path!(String.t()) :: Path.t()
  def wit_path!(name) when is_binary(name) do
    Path.join(fixture_dir!(name), name <> ".wit")
  end

  @doc """
  Runs `wasm-tools` (the one `bin/setup` installs) with `args` and returns
  its standard output; raises if it exits with an error.

      Wasmbeam.ComponentFixtures.wasm_tools!(["component", "wit", path])
  """
  @spec wasm_tools!([String.t()]) :: String.t()
  def wasm_tools!(args) do
    run!(tool!("wasm-tools"), args, "wasm-tools")
  end

  @doc """
  The tools a build uses, with their versions, as `{name, path, version}`.
  Raises, naming `bin/setup`, when one is missing.
  """
  @spec tools!() :: [{String.t(), Path.t(), String.t()}]
  def tools! do
    for tool <- ["wit-bindgen", "wasm-tools", "clang"] do
      path = tool!(tool)
      {tool, path, version!(path)}
    end
  end

  defp fixture_dir!(name) do
    dir = Path.join(@source_root, name)

    unless name =~ ~r/\A[a-z0-9_-]+\z/ and File.dir?(dir) do
      raise ArgumentError,
            "no component fixture #{inspect(name)} in #{@source_root} " <>
              "(there are: #{Enum.join(names(), ", ")})"
    end

    dir
  end

  # The fixture's files, sorted: <name>.wit and the C sources beside it.
  defp sources!(name) do
    dir = fixture_dir!(name)

    dir
    |> File.ls!()
    |> Enum.filter(&(Path.extname(&1) in [".wit", ".c", ".h"]))
    |> Enum.sort()
    |> Enum.map(&Path.join(dir, &1))
  end

  defp fingerprint(sources) do
    tools = for {tool, _path, version} <- tools!(), do: [tool, 0, version, 0]
    files = for file <- sources, do: [Path.basename(file), 0, File.read!(file), 0]

    # MD5 (in erts) rather than :crypto, which Mix 1.15+ leaves off the code
    # path of a project that does not declare it; this is no security check.
    :erlang.md5([tools, Enum.join(@cflags, " "), 0, files, wasi_wit_fingerprint(sources)])
    |> Base.encode16(case: :lower)
  end

  defp fresh?(target, stamp, fingerprint) do
    File.exists?(target) and File.read(stamp) == {:ok, fingerprint}
  end

  defp build!(name, sources, target, stamp, fingerprint) do
    File.mkdir_p!(@cache_dir)
    # Unique across VMs (two test runs may build at once) and within one.
    work = Path.join(@cache_dir, ".build-#{name}-#{System.pid()}-#{unique()}")
    File.mkdir_p!(work)

    try do
      wit = wit_path!(name)
      gen = Path.join(work, "gen")
      core = Path.join(work, "core.wasm")
      component = Path.join(work, "component.wasm")

      wit_bindgen = tool!("wit-bindgen")
      wasm_tools = tool!("wasm-tools")

      run!(wit_bindgen, ["c", "--out-dir", gen, wit_package!(wit, work)], "wit-bindgen")
      generated = gen |> File.ls!() |> Enum.filter(&(Path.extname(&1) in [".c", ".o"]))
      c_sources = Enum.filter(sources, &(Path.extname(&1) == ".c"))

      run!(
        tool!("clang"),
        @cflags ++
          ["-I", gen] ++ Enum.map(generated, &Path.join(gen, &1)) ++ c_sources ++ ["-o", core],
        "clang"
      )

      check_no_wasi_imports!(name, wasm_tools, core)
      run!(wasm_tools, ["component", "new", core, "-o", component], "wasm-tools")
      run!(wasm_tools, ["validate", component], "wasm-tools")

      # The component first, then the stamp that says it is current: a
      # reader that sees the new stamp also sees the new component.
      File.rename!(component, target)
      File.write!(Path.join(work, "stamp"), fingerprint)
      File.rename!(Path.join(work, "stamp"), stamp)
    after
      File.rm_rf!(work)
    end
  end

  # A world that imports WASI preview-2 interfaces (`import wasi:...`) is
  # resolved with the WASI WIT of the wasmtime-wasi crate the NIF is built
  # with, from cargo's registry (where building the NIF put it): the fixture
  # and the host then agree on every WASI type. Other worlds are used as
  # they are.
  defp wit_package!(wit, work) do
    if File.read!(wit) =~ ~r/^\s*import wasi:/m do
      dir = Path.join(work, "wit")
      File.mkdir_p!(dir)
      File.cp!(wit, Path.join(dir, Path.basename(wit)))
      File.cp_r!(wasi_wit_deps!(), Path.join(dir, "deps"))
      dir
    else
      wit
    end
  end

  defp wasi_wit_deps! do
    version = locked_version!("wasmtime-wasi")
    cargo_home = System.get_env("CARGO_HOME") || Path.expand("~/.cargo")
    pattern = Path.join([cargo_home, "registry/src/*/wasmtime-wasi-#{version}/src/p2/wit/deps"])

    case Path.wildcard(pattern) do
      [dir | _] ->
        dir

      [] ->
        raise "the WASI WIT of wasmtime-wasi #{version} is not in cargo's registry " <>
                "(#{pattern}): build the NIF first (mix compile), which downloads it"
    end
  end

  defp locked_version!(crate) do
    lock = File.read!(Path.join(@root, "Cargo.lock"))

    case Regex.run(~r/name = "#{Regex.escape(crate)}"\nversion = "([^"]+)"/, lock) do
      [_, version] -> version
      nil -> raise "#{crate} is not in Cargo.lock"
    end
  end

  # The WASI WIT a fixture is built against, for its fingerprint.
  defp wasi_wit_fingerprint(sources) do
    wit = Enum.find(sources, &(Path.extname(&1) == ".wit"))

    if wit && File.read!(wit) =~ ~r/^\s*import wasi:/m do
      dir = wasi_wit_deps!()

      for file <- dir |> File.ls!() |> Enum.sort(),
          do: [file, 0, File.read!(Path.join(dir, file))]
    else
      []
    end
  end

  # With no WASI preview-1 imports, `component new` needs no adapter; a libc
  # function that needs WASI (printf, ...) would bring some in: say which.
  # (Preview-2 interfaces that the world imports are the component's own.)
  defp check_no_wasi_imports!(name, wasm_tools, core) do
    imports =
      run!(wasm_tools, ["print", core], "wasm-tools")
      |> String.split("\n")
      |> Enum.filter(&(&1 =~ ~r/^\s*\(import "wasi_(snapshot_preview1|unstable)"/))

    if imports != [] do
      raise "component fixture #{name}: the core module imports WASI, which these " <>
              "fixtures must not use (no adapter is configured):\n" <> Enum.join(imports, "\n")
    end
  end

  defp tool!(name) do
    local = Path.join(@tools_dir, name)

    cond do
      File.regular?(local) -> local
      path = System.find_executable(name) -> path
      true -> raise missing_tool(name)
    end
  end

  defp missing_tool("clang") do
    "clang is needed to build the component test fixtures: run bin/setup --component-tools " <>
      "(it installs Debian's clang, lld and wasi-libc)"
  end

  defp missing_tool(name) do
    "#{name} is needed to build the component test fixtures and was found neither in " <>
      "#{Path.relative_to(@tools_dir, @root)} nor on PATH: run bin/setup --component-tools " <>
      "(it installs the pinned wasm-tools and wit-bindgen into .cache/tools)"
  end

  # Tool versions are part of every fingerprint: ask each tool once per VM.
  defp version!(path) do
    key = {__MODULE__, :version, path}

    case :persistent_term.get(key, nil) do
      nil ->
        version = run!(path, ["--version"], Path.basename(path)) |> String.split("\n") |> hd()
        :persistent_term.put(key, version)
        version

      version ->
        version
    end
  end

  defp run!(executable, args, label) do
    case System.cmd(executable, args, stderr_to_stdout: true) do
      {out, 0} ->
        out

      {out, status} ->
        raise "#{label} failed (exit status #{status}):\n  " <>
                Enum.join([executable | args], " ") <> "\n" <> out
    end
  end

  defp unique, do: System.unique_integer([:positive])
end
