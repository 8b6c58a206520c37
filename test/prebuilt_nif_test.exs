defmodule Wasmbeam.PrebuiltNifTest do
  # A user without Rust: a project depends on Wasmbeam's package (its files
  # copied as Hex would unpack them: no NIF in it), cargo is made
  # unusable, and the NIF comes from an archive made by
  # `mix wasmbeam.package_nif`, over HTTP from a server on 127.0.0.1 or
  # from a path, checked against its SHA-256 before it is installed.
  use ExUnit.Case, async: true

  alias Wasmbeam.Test.HexFiles

  doctest Mix.Wasmbeam.Prebuilt

  @moduletag :consumer
  @moduletag timeout: 600_000

  @root Path.expand("..", __DIR__)

  setup do
    dir = Wasmbeam.Test.Tmp.path("wasmbeam-prebuilt")
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf(dir) end)

    # The archive, from the NIF this test run uses.
    dist = Path.join(dir, "dist")

    {:ok, archive, sha256} =
      ExUnit.CaptureIO.with_io(fn ->
        Mix.Tasks.Wasmbeam.PackageNif.run(["--no-compile", "--out", dist])
      end)
      |> elem(0)

    # The package, and a project that depends on it.
    package = Path.join(dir, "wasmbeam")
    HexFiles.copy(Mix.Project.config()[:package], @root, package)
    refute File.exists?(Path.join(package, "priv"))

    consumer = Path.join(dir, "consumer")
    File.mkdir_p!(Path.join(consumer, "lib"))

    File.cp!(
      Path.join(@root, "test/consumer/lib/consumer.ex"),
      Path.join(consumer, "lib/consumer.ex")
    )

    File.write!(Path.join(consumer, "mix.exs"), """
    defmodule PrebuiltConsumer.MixProject do
      use Mix.Project

      def project do
        [app: :prebuilt_consumer, version: "0.1.0", deps: [{:wasmbeam, path: #{inspect(package)}}]]
      end

      def application, do: [extra_applications: [:logger]]
    end
    """)

    %{dir: dir, archive: archive, sha256: sha256, package: package, consumer: consumer}
  end

  defp start_http_server(document_root) do
    {:ok, _} = Application.ensure_all_started(:inets)

    {:ok, pid} =
      :inets.start(:httpd,
        port: 0,
        bind_address: {127, 0, 0, 1},
        server_name: ~c"wasmbeam-prebuilt-test",
        server_root: String.to_charlist(document_root),
        document_root: String.to_charlist(document_root)
      )

    on_exit(fn -> :inets.stop(:httpd, pid) end)
    Keyword.fetch!(:httpd.info(pid), :port)
  end

  # Runs mix in the consumer with cargo unavailable; `nil` unsets a variable.
  defp mix(consumer, args, env) do
    System.cmd("mix", args,
      cd: consumer,
      env: [{"MIX_ENV", "dev"}, {"CARGO", "/bin/false"}, {"PATH", path_without_cargo()}] ++ env,
      stderr_to_stdout: true
    )
  end

  defp path_without_cargo do
    System.get_env("PATH")
    |> String.split(":")
    |> Enum.reject(&File.exists?(Path.join(&1, "cargo")))
    |> Enum.join(":")
  end

  defp native_files(package) do
    case File.ls(Path.join(package, "priv/native")) do
      {:ok, files} -> Enum.sort(files)
      {:error, :enoent} -> []
    end
  end

  test "a project without Rust installs the NIF from an archive over HTTP or from a path, " <>
         "and refuses one whose checksum does not match",
       context do
    %{archive: archive, sha256: sha256, package: package, consumer: consumer} = context
    port = start_http_server(Path.dirname(archive))
    url = "http://127.0.0.1:#{port}/#{Path.basename(archive)}"
    assert File.read!(archive <> ".sha256") == "#{sha256}  #{Path.basename(archive)}\n"

    # Without an archive, the build needs cargo, which is not there.
    {output, status} = mix(consumer, ["deps.compile", "wasmbeam"], [{"WASMBEAM_PREBUILT", nil}])
    assert status != 0, output
    assert native_files(package) == []

    # A wrong checksum: a compile error naming both sums; nothing installed.
    wrong = String.duplicate("0", 64)
    env = [{"WASMBEAM_PREBUILT", url}, {"WASMBEAM_PREBUILT_SHA256", wrong}]
    {output, status} = mix(consumer, ["deps.compile", "wasmbeam"], env)
    assert status != 0, output
    assert output =~ "expected #{wrong}, got #{sha256}"
    assert native_files(package) == []

    # The right one, over HTTP: installed, loaded, called.
    env = [{"WASMBEAM_PREBUILT", url}, {"WASMBEAM_PREBUILT_SHA256", String.upcase(sha256)}]
    {output, status} = mix(consumer, ["deps.compile", "wasmbeam"], env)
    assert status == 0, output
    assert output =~ "Installing the prebuilt wasmbeam NIF from #{url}"
    assert native_files(package) == ["libwasmbeam.so", "libwasmbeam.so.profile"]
    # The build's priv/ leads to it, though the package had no priv/ when
    # Mix laid out the build.
    build_root = System.get_env("MIX_BUILD_ROOT", "_build")

    assert File.regular?(
             Path.join([consumer, build_root, "dev/lib/wasmbeam/priv/native/libwasmbeam.so"])
           )

    assert File.read!(Path.join(package, "priv/native/libwasmbeam.so")) ==
             File.read!(Path.join(@root, "priv/native/libwasmbeam.so"))

    {output, status} = mix(consumer, ["run", "-e", "Consumer.check()"], env)
    assert status == 0, output
    assert output =~ "consumer result: 42"
    # Installed once: the same archive again is nothing to do.
    refute output =~ "Installing the prebuilt"

    # From a path, into a package that has no NIF yet.
    File.rm_rf!(Path.join(package, "priv"))
    env = [{"WASMBEAM_PREBUILT", archive}, {"WASMBEAM_PREBUILT_SHA256", sha256}]
    {output, status} = mix(consumer, ["deps.compile", "wasmbeam"], env)
    assert status == 0, output
    assert output =~ "Installing the prebuilt wasmbeam NIF from #{archive}"
    {output, status} = mix(consumer, ["run", "-e", "Consumer.check()"], env)
    assert status == 0, output
    assert output =~ "consumer result: 42"

    # A later compile without the variables keeps the installed library
    # (there is no cargo to replace it).
    {output, status} = mix(consumer, ["deps.compile", "wasmbeam"], [{"WASMBEAM_PREBUILT", nil}])
    assert status == 0, output
    refute output =~ "cargo"
    assert native_files(package) == ["libwasmbeam.so", "libwasmbeam.so.profile"]
  end

  test "archives that are not for this Wasmbeam or this machine are refused before install",
       context do
    %{archive: archive, dir: dir} = context
    {:ok, files} = :erl_tar.extract(String.to_charlist(archive), [:memory, :compressed])
    files = Map.new(files, fn {name, data} -> {to_string(name), data} end)
    installed = Path.join(dir, "native/libwasmbeam.so")
    marker = installed <> ".profile"
    expected = Mix.Wasmbeam.Prebuilt.description("0.1.0", "/nonexistent")

    repack = fn description ->
      path = Path.join(dir, "other-#{System.unique_integer([:positive])}.tar.gz")

      :ok =
        :erl_tar.create(
          String.to_charlist(path),
          [
            {~c"libwasmbeam.so", files["libwasmbeam.so"]},
            {~c"wasmbeam-nif.txt", description}
          ],
          [:compressed]
        )

      %{location: path, sha256: Mix.Wasmbeam.Prebuilt.sha256(File.read!(path))}
    end

    line = fn key, value -> "#{key} #{value}\n" end
    ok = line.("nif", "2.16") <> line.("target", expected["target"])
    expected = Map.put(expected, "wasmbeam", Mix.Project.config()[:version])

    cases = [
      {line.("wasmbeam", "9.9.9") <> ok, "NIF of Wasmbeam 9.9.9"},
      {line.("wasmbeam", expected["wasmbeam"]) <>
         line.("nif", "2.16") <>
         line.("target", "sparc-plan9"), "a NIF for sparc-plan9"},
      {line.("wasmbeam", expected["wasmbeam"]) <>
         line.("nif", "2.99") <>
         line.("target", expected["target"]), "NIF version 2.99"},
      {"", "is not a Wasmbeam NIF archive"}
    ]

    for {description, message} <- cases do
      assert {:error, error} =
               Mix.Wasmbeam.Prebuilt.install(repack.(description), expected, installed, marker)

      assert error =~ message
      refute File.exists?(Path.dirname(installed))
    end

    assert :ok =
             Mix.Wasmbeam.Prebuilt.install(
               repack.(line.("wasmbeam", expected["wasmbeam"]) <> ok),
               expected,
               installed,
               marker
             )

    assert File.ls!(Path.dirname(installed)) |> Enum.sort() ==
             ["libwasmbeam.so", "libwasmbeam.so.profile"]
  end
end
