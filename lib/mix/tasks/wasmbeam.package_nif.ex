defmodule Mix.Tasks.Wasmbeam.PackageNif do
  @shortdoc "Packs the built NIF into an archive with a checksum, for machines without Rust"
  @moduledoc """
  Packs the NIF this project built (`priv/native/libwasmbeam.so`) into an
  archive that projects can install instead of building, on machines of
  the same kind that have no Rust toolchain (see `Mix.Wasmbeam.Prebuilt`).

      mix wasmbeam.package_nif
      mix wasmbeam.package_nif --out dist

  Compiles first (which builds the NIF with cargo if it is out of date),
  then writes into `--out` (default `tmp/prebuilt`):

    * `libwasmbeam-v<version>-nif-<nif version>-<target>.so.tar.gz`, for
      example `libwasmbeam-v0.1.0-nif-2.16-x86_64-linux-gnu.so.tar.gz`;
    * the same name plus `.sha256`: its SHA-256, in `sha256sum` format
      (`sha256sum -c` checks it).

  The target is this machine's CPU architecture and OS (and C library on
  Linux): an archive runs only on machines of that kind, with an OTP
  whose NIF version is at least the one in the name. Build it on the
  oldest OS you support: a library linked against a newer glibc does not
  load on an older one.

  A consumer then compiles with

      WASMBEAM_PREBUILT=https://.../libwasmbeam-v0.1.0-nif-2.16-x86_64-linux-gnu.so.tar.gz \\
      WASMBEAM_PREBUILT_SHA256=<the sum> mix deps.compile wasmbeam

  ## Options

    * `--out DIR` - where to write (default `tmp/prebuilt`)
    * `--no-compile` - package what is in `priv/native` without compiling first
  """
  use Mix.Task

  alias Mix.Wasmbeam.Prebuilt

  @switches [out: :string, compile: :boolean]

  @impl true
  def run(argv) do
    case OptionParser.parse(argv, strict: @switches) do
      {opts, [], []} ->
        package(opts)

      {_, _, [{bad, _} | _]} ->
        Mix.raise("unknown or invalid option #{bad}; usage: mix wasmbeam.package_nif [--out DIR]")

      {_, [extra | _], _} ->
        Mix.raise("unexpected argument #{extra}; usage: mix wasmbeam.package_nif [--out DIR]")
    end
  end

  defp package(opts) do
    if Keyword.get(opts, :compile, true), do: Mix.Task.run("compile")

    root = Path.dirname(Mix.Project.project_file())
    {:ok, platform} = Mix.Wasmbeam.Platform.current("wasmbeam")
    library = Path.join([root, "priv", "native", platform.installed])
    out = Path.expand(Keyword.get(opts, :out, "tmp/prebuilt"), root)

    description =
      Prebuilt.description(
        Mix.Project.config()[:version],
        Path.join(root, "native/wasmbeam/Cargo.toml")
      )

    case Prebuilt.package(library, description, out) do
      {:ok, %{archive: archive, checksum_file: checksum_file, sha256: sha256}} ->
        Mix.shell().info("""
        #{Path.relative_to_cwd(archive)} (#{div(File.stat!(archive).size + 1023, 1024)} KiB)
        #{Path.relative_to_cwd(checksum_file)}: #{sha256}
        Use it with WASMBEAM_PREBUILT=<path or URL> WASMBEAM_PREBUILT_SHA256=#{sha256}\
        """)

        {:ok, archive, sha256}

      {:error, message} ->
        Mix.raise(message)
    end
  end
end
