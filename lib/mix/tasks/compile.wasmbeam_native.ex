defmodule Mix.Tasks.Compile.WasmbeamNative do
  @shortdoc "Builds Wasmbeam's Rust NIF with cargo"
  @moduledoc """
  Builds the NIF crate in `native/wasmbeam` with cargo (release profile)
  and installs the shared library as `priv/native/libwasmbeam.so`, the
  name `:erlang.load_nif/2` looks for on Linux and macOS alike. What
  differs per OS (cargo's file name, the linker flags macOS needs) is
  decided by `Mix.Wasmbeam.Platform`.

  It does nothing when the installed library is newer than every file of
  the crate (`Cargo.toml`, `Cargo.lock`, `native/**`) and was built with the
  profile asked for now (recorded beside it in `libwasmbeam.so.profile`). Cargo's own output
  is shown as it arrives; a failed build is reported as a compile error
  with cargo's exit status.

  `CARGO` selects the cargo binary and `CARGO_TARGET_DIR` the build folder,
  as they do for cargo itself. `WASMBEAM_CARGO_PROFILE` selects the cargo
  profile (default `release`); `quick` skips link-time optimisation and
  builds incrementally, for fast edit-compile cycles while developing the
  NIF. Benchmarks and CI use `release`.

  ## Without Rust

  With `WASMBEAM_PREBUILT` (a path or an `http(s)://` URL of an archive
  made by `mix wasmbeam.package_nif`) and `WASMBEAM_PREBUILT_SHA256` set,
  or `config :wasmbeam, :prebuilt_nif, source: ..., sha256: ...`, cargo is
  not run: the archive is fetched, its checksum verified, and its library
  installed (see `Mix.Wasmbeam.Prebuilt`). A checksum that does not match
  is a compile error naming both sums, and nothing is installed. The
  installed library then stays, with or without the variables, until a
  source of the crate is newer than it (delete `priv/native` to build with
  cargo instead).
  """
  use Mix.Task.Compiler

  alias Mix.Wasmbeam.{Platform, Prebuilt}

  @crate "wasmbeam"

  @impl true
  def run(_args) do
    root = project_root()

    with {:ok, platform} <- Platform.current(@crate),
         {:ok, prebuilt} <-
           Prebuilt.source(System.get_env(), Application.get_env(:wasmbeam, :prebuilt_nif)) do
      installed = Path.join([root, "priv", "native", platform.installed])

      cond do
        prebuilt != nil ->
          install_prebuilt(root, prebuilt, installed)

        up_to_date?(root, installed) and
            (built_profile(installed) == profile() or prebuilt?(installed)) ->
          {:noop, []}

        true ->
          build(root, platform, installed)
      end
    else
      {:error, message} -> error(message)
    end
  end

  defp install_prebuilt(root, prebuilt, installed) do
    marker = installed <> ".profile"

    if Prebuilt.installed?(installed, marker, prebuilt.sha256) do
      {:noop, []}
    else
      Mix.shell().info("==> Installing the prebuilt #{@crate} NIF from #{prebuilt.location}")
      expected = Prebuilt.description(version(), Path.join(root, "native/#{@crate}/Cargo.toml"))

      case Prebuilt.install(prebuilt, expected, installed, marker) do
        :ok ->
          link_priv()
          {:ok, []}

        {:error, message} ->
          error(message)
      end
    end
  end

  defp version, do: Mix.Project.config()[:version]

  # A library installed from an archive stays while no source is newer,
  # also in a later compile without WASMBEAM_PREBUILT (a Docker step, a
  # shell without the variable): there may be no cargo to replace it.
  defp prebuilt?(installed), do: String.starts_with?(built_profile(installed) || "", "prebuilt ")

  defp project_root, do: Path.dirname(Mix.Project.project_file())

  defp sources(root) do
    [Path.join(root, "Cargo.toml"), Path.join(root, "Cargo.lock")] ++
      Path.wildcard(Path.join(root, "native/**/*.{rs,toml}"))
  end

  defp up_to_date?(root, installed) do
    case File.stat(installed, time: :posix) do
      {:ok, %{mtime: built}} ->
        Enum.all?(sources(root), fn file ->
          case File.stat(file, time: :posix) do
            {:ok, %{mtime: mtime}} -> mtime <= built
            {:error, _} -> true
          end
        end)

      {:error, _} ->
        false
    end
  end

  defp build(root, platform, installed) do
    cargo = System.get_env("CARGO") || System.find_executable("cargo")

    if cargo == nil do
      error(
        "cargo was not found in PATH. Wasmbeam builds a Rust NIF: install Rust " <>
          "(rustup, 1.95 or newer) and try again."
      )
    else
      Mix.shell().info("==> Building the #{@crate} NIF with cargo (#{profile()})")

      args = Platform.cargo_args(platform, @crate, profile())
      # The library is dated when the build began, not when it ended: a
      # source edited while cargo ran (after cargo read it) is then newer
      # than the library, and the next compile builds again.
      started = System.os_time(:second) - 1

      case System.cmd(cargo, args,
             cd: root,
             into: IO.stream(:stdio, :line),
             stderr_to_stdout: true
           ) do
        {_, 0} ->
          install(root, platform, installed, started)

        {_, status} ->
          error("cargo build failed with exit status #{status}; its errors are above")
      end
    end
  end

  defp install(root, platform, installed, started) do
    target_dir = System.get_env("CARGO_TARGET_DIR") || Path.join(root, "target")
    built = Path.join([target_dir, profile(), platform.built])
    File.mkdir_p!(Path.dirname(installed))
    # Copy then rename: a VM that has the old library loaded keeps its
    # mapping, and no reader ever sees a half-written file.
    tmp = installed <> ".tmp#{System.pid()}-#{System.unique_integer([:positive])}"
    File.cp!(built, tmp)
    File.touch!(tmp, started)
    File.rename!(tmp, installed)
    File.write!(installed <> ".profile", profile())
    link_priv()
    {:ok, []}
  end

  # Mix links the build's priv/ to the project's when it lays out the
  # build, before any compiler runs, and only if priv/ exists then. A
  # package has no priv/ until this compiler makes one, so without a
  # second layout the first build of a dependency would leave the
  # application without the NIF (:code.priv_dir/1 points into the build).
  defp link_priv, do: Mix.Project.build_structure()

  defp profile, do: System.get_env("WASMBEAM_CARGO_PROFILE", "release")

  defp built_profile(installed) do
    case File.read(installed <> ".profile") do
      {:ok, profile} -> String.trim(profile)
      {:error, _} -> nil
    end
  end

  defp error(message) do
    Mix.shell().error(message)

    diagnostic = %Mix.Task.Compiler.Diagnostic{
      compiler_name: "wasmbeam_native",
      file: Path.join(project_root(), "native/#{@crate}"),
      message: message,
      position: nil,
      severity: :error
    }

    {:error, [diagnostic]}
  end
end
