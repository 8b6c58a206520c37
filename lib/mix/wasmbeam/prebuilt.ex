defmodule Mix.Wasmbeam.Prebuilt do
  @moduledoc """
  Prebuilt NIF archives: made by `mix wasmbeam.package_nif` on a machine
  with Rust, installed by the NIF compiler
  (`Mix.Tasks.Compile.WasmbeamNative`) on machines without it.

  An archive is a gzipped tar file named

      libwasmbeam-v<version>-nif-<nif version>-<target>.so.tar.gz

  (for example `libwasmbeam-v0.1.0-nif-2.16-x86_64-linux-gnu.so.tar.gz`),
  holding the library (`libwasmbeam.so`) and `wasmbeam-nif.txt`, which
  says what it was built for. Beside it, `<archive>.sha256` holds its
  SHA-256 in `sha256sum` format.

  ## Using an archive

  Set both, in the environment of `mix compile` (or `mix deps.compile`):

      WASMBEAM_PREBUILT=/path/to/libwasmbeam-....tar.gz     # or http:// or https:// URL
      WASMBEAM_PREBUILT_SHA256=<the 64 hex digits from the .sha256 file>

  or in the consuming project's `config/config.exs`:

      config :wasmbeam, :prebuilt_nif,
        source: "https://example.com/libwasmbeam-v0.1.0-nif-2.16-x86_64-linux-gnu.so.tar.gz",
        sha256: "..."

  The environment variables win over the configuration. The checksum is
  required: it is what makes a downloaded file trustworthy, so it must
  come from somewhere other than the download itself (commit it with
  your project).

  The archive is read into memory, its SHA-256 compared with the one
  given, and only then unpacked; its description must name this
  Wasmbeam version, this machine's target and a NIF version this VM
  supports. The library is written to a temporary file in `priv/native`
  and renamed into place, so a failure at any step leaves nothing new in
  `priv/native` and the VM never loads a file whose checksum did not
  match. The checksum of the installed archive is recorded beside the
  library: a later compile with the same archive does nothing, one with
  another archive installs it, and one without an archive keeps it as
  long as no source of the crate is newer.

  `http://` and `https://` URLs are fetched with OTP's `:httpc`; HTTPS
  verifies the server against the OS's CA certificates
  (`:public_key.cacerts_get/0`). The `http://` path is tested end to end
  (`test/prebuilt_nif_test.exs`); `https://` is not (no TLS server in the
  tests).
  """

  @crate "wasmbeam"
  @description "wasmbeam-nif.txt"

  @typedoc "Where an archive comes from, and the SHA-256 it must have (lower-case hex)."
  @type source :: %{location: String.t(), sha256: String.t()}

  @doc """
  The archive to install instead of building, if one is configured:
  from `env` (the `WASMBEAM_PREBUILT*` variables) first, else from
  `config` (the `:prebuilt_nif` application environment of `:wasmbeam`).

      iex> Mix.Wasmbeam.Prebuilt.source(%{}, nil)
      {:ok, nil}

      iex> sum = String.duplicate("ab", 32)
      iex> Mix.Wasmbeam.Prebuilt.source(%{"WASMBEAM_PREBUILT" => "/tmp/x.tar.gz", "WASMBEAM_PREBUILT_SHA256" => sum}, nil)
      {:ok, %{location: "/tmp/x.tar.gz", sha256: String.duplicate("ab", 32)}}

      iex> {:error, message} = Mix.Wasmbeam.Prebuilt.source(%{"WASMBEAM_PREBUILT" => "/tmp/x.tar.gz"}, nil)
      iex> message =~ "WASMBEAM_PREBUILT_SHA256"
      true
  """
  @spec source(%{optional(String.t()) => String.t()}, keyword() | nil) ::
          {:ok, source() | nil} | {:error, String.t()}
  def source(env, config) do
    case {non_empty(env["WASMBEAM_PREBUILT"]), config} do
      {nil, nil} ->
        {:ok, nil}

      {nil, config} when is_list(config) ->
        checked(config[:source], config[:sha256], "the :prebuilt_nif config's :sha256")

      {nil, other} ->
        {:error,
         "config :wasmbeam, :prebuilt_nif must be a keyword list with :source and :sha256, got: " <>
           inspect(other)}

      {location, _} ->
        checked(location, non_empty(env["WASMBEAM_PREBUILT_SHA256"]), "WASMBEAM_PREBUILT_SHA256")
    end
  end

  defp non_empty(nil), do: nil
  defp non_empty(value), do: if(String.trim(value) == "", do: nil, else: String.trim(value))

  defp checked(location, sha256, sha_name) do
    cond do
      not is_binary(location) or location == "" ->
        {:error, "a prebuilt NIF needs a path or URL, got: #{inspect(location)}"}

      sha256 == nil ->
        {:error,
         "a prebuilt NIF (#{location}) needs its SHA-256: set #{sha_name} to the 64 hex " <>
           "digits of the archive's .sha256 file"}

      not (is_binary(sha256) and sha256 =~ ~r/\A[0-9a-fA-F]{64}\z/) ->
        {:error, "#{sha_name} must be 64 hex digits (a SHA-256), got: #{inspect(sha256)}"}

      true ->
        {:ok, %{location: location, sha256: String.downcase(sha256)}}
    end
  end

  @doc """
  What a prebuilt NIF built here is for: this Wasmbeam `version`, the NIF
  version the crate is compiled against (the `nif_version_X_Y` feature of
  rustler in `crate_toml`, else this VM's) and this machine's target.
  """
  @spec description(String.t(), Path.t()) :: %{String.t() => String.t()}
  def description(version, crate_toml) do
    %{
      "wasmbeam" => version,
      "nif" => nif_version(crate_toml),
      "target" => Mix.Wasmbeam.Platform.current_target()
    }
  end

  defp nif_version(crate_toml) do
    with {:ok, text} <- File.read(crate_toml),
         [_, major, minor] <- Regex.run(~r/"nif_version_(\d+)_(\d+)"/, text) do
      "#{major}.#{minor}"
    else
      _ -> to_string(:erlang.system_info(:nif_version))
    end
  end

  @doc "The archive's file name for a `description/2`."
  @spec archive_name(%{String.t() => String.t()}) :: String.t()
  def archive_name(%{"wasmbeam" => version, "nif" => nif, "target" => target}),
    do: "lib#{@crate}-v#{version}-nif-#{nif}-#{target}.so.tar.gz"

  @doc """
  Packs `library` with `description` into `out_dir`; writes the archive
  and its `.sha256` file. Returns their paths and the checksum.
  """
  @spec package(Path.t(), %{String.t() => String.t()}, Path.t()) ::
          {:ok, %{archive: Path.t(), checksum_file: Path.t(), sha256: String.t()}}
          | {:error, String.t()}
  def package(library, description, out_dir) do
    with {:ok, bytes} <- read(library) do
      name = archive_name(description)
      archive = Path.join(out_dir, name)
      File.mkdir_p!(out_dir)

      text =
        description
        |> Enum.sort()
        |> Enum.map_join(fn {key, value} -> "#{key} #{value}\n" end)

      tmp = archive <> ".tmp#{System.pid()}-#{System.unique_integer([:positive])}"

      files = [
        {~c"lib#{@crate}.so", bytes},
        {String.to_charlist(@description), text}
      ]

      try do
        :ok = :erl_tar.create(String.to_charlist(tmp), files, [:compressed])
        sha256 = tmp |> File.read!() |> sha256()
        File.rename!(tmp, archive)
        checksum_file = archive <> ".sha256"
        File.write!(checksum_file, "#{sha256}  #{name}\n")
        {:ok, %{archive: archive, checksum_file: checksum_file, sha256: sha256}}
      after
        File.rm(tmp)
      end
    end
  end

  defp read(path) do
    case File.read(path) do
      {:ok, bytes} -> {:ok, bytes}
      {:error, reason} -> {:error, "cannot read #{path}: #{:file.format_error(reason)}"}
    end
  end

  @doc """
  Whether the library at `installed` came from the archive with `sha256`
  (the record `install/4` writes beside it).
  """
  @spec installed?(Path.t(), String.t(), String.t()) :: boolean()
  def installed?(installed, marker, sha256) do
    File.regular?(installed) and File.read(marker) == {:ok, marker_text(sha256)}
  end

  defp marker_text(sha256), do: "prebuilt #{sha256}"

  @doc """
  Fetches the archive of `source`, checks its SHA-256 and description
  against `expected` (the description this machine needs, without
  `"nif"`: any NIF version up to this VM's is accepted) and installs its
  library at `installed`, recording the checksum in `marker`. Nothing is
  written before every check has passed.
  """
  @spec install(source(), %{String.t() => String.t()}, Path.t(), Path.t()) ::
          :ok | {:error, String.t()}
  def install(%{location: location, sha256: expected_sum}, expected, installed, marker) do
    with {:ok, bytes} <- fetch(location),
         :ok <- check_sum(location, bytes, expected_sum),
         {:ok, files} <- unpack(location, bytes),
         {:ok, library} <- check_contents(location, files, expected) do
      write(library, installed, marker, expected_sum)
    end
  end

  @doc false
  def sha256(bytes) do
    ensure_loaded(:crypto)
    :crypto.hash(:sha256, bytes) |> Base.encode16(case: :lower)
  end

  defp check_sum(location, bytes, expected) do
    case sha256(bytes) do
      ^expected ->
        :ok

      actual ->
        {:error,
         "the prebuilt NIF #{location} does not have the expected SHA-256: expected " <>
           "#{expected}, got #{actual}. Nothing was installed."}
    end
  end

  defp unpack(location, bytes) do
    case :erl_tar.extract({:binary, bytes}, [:memory, :compressed]) do
      {:ok, files} ->
        {:ok, Map.new(files, fn {name, data} -> {to_string(name), data} end)}

      {:error, reason} ->
        {:error, "#{location} is not a gzipped tar archive: #{inspect(reason)}"}
    end
  end

  defp check_contents(location, files, expected) do
    library = files["lib#{@crate}.so"]

    description =
      for line <- String.split(files[@description] || "", "\n", trim: true),
          [key, value] <- [String.split(line, " ", parts: 2)],
          into: %{},
          do: {key, value}

    vm_nif = to_string(:erlang.system_info(:nif_version))

    cond do
      library == nil or description == %{} ->
        {:error,
         "#{location} is not a Wasmbeam NIF archive (it needs lib#{@crate}.so and #{@description})"}

      description["wasmbeam"] != expected["wasmbeam"] ->
        {:error,
         "#{location} holds the NIF of Wasmbeam #{description["wasmbeam"]}, " <>
           "this is Wasmbeam #{expected["wasmbeam"]}"}

      description["target"] != expected["target"] ->
        {:error,
         "#{location} holds a NIF for #{description["target"]}, this machine is #{expected["target"]}"}

      not nif_supported?(description["nif"], vm_nif) ->
        {:error,
         "#{location} holds a NIF built for NIF version #{description["nif"]}; " <>
           "this VM supports up to #{vm_nif}"}

      true ->
        {:ok, library}
    end
  end

  defp nif_supported?(wanted, available) do
    with [wm, wn] <- parse_nif(wanted), [am, an] <- parse_nif(available) do
      wm == am and wn <= an
    else
      _ -> false
    end
  end

  defp parse_nif(version) when is_binary(version) do
    case Regex.run(~r/\A(\d+)\.(\d+)\z/, version) do
      [_, major, minor] -> [String.to_integer(major), String.to_integer(minor)]
      nil -> nil
    end
  end

  defp parse_nif(_), do: nil

  # Written beside its final place and renamed over it, so a VM that has
  # the old library mapped keeps it, no reader sees half a file, and a
  # failure leaves only the old state behind.
  defp write(library, installed, marker, sha256) do
    File.mkdir_p!(Path.dirname(installed))
    tmp = installed <> ".tmp#{System.pid()}-#{System.unique_integer([:positive])}"

    try do
      with :ok <- File.write(tmp, library),
           :ok <- File.chmod(tmp, 0o755),
           :ok <- File.rename(tmp, installed),
           :ok <- File.write(marker, marker_text(sha256)) do
        :ok
      else
        {:error, reason} ->
          {:error, "cannot install #{installed}: #{:file.format_error(reason)}"}
      end
    after
      File.rm(tmp)
    end
  end

  defp fetch("http://" <> _ = url), do: http_get(url)
  defp fetch("https://" <> _ = url), do: http_get(url)

  defp fetch(path) do
    case File.read(path) do
      {:ok, bytes} ->
        {:ok, bytes}

      {:error, reason} ->
        {:error, "cannot read the prebuilt NIF #{path}: #{:file.format_error(reason)}"}
    end
  end

  defp http_get(url) do
    https? = String.starts_with?(url, "https://")
    apps = if https?, do: [:inets, :crypto, :public_key, :ssl], else: [:inets]
    Enum.each(apps, &ensure_loaded/1)

    with {:ok, _} <- Application.ensure_all_started(:inets),
         {:ok, _} <- if(https?, do: Application.ensure_all_started(:ssl), else: {:ok, []}) do
      http_options = [timeout: 300_000, connect_timeout: 30_000] ++ tls_options(https?)

      case :httpc.request(:get, {String.to_charlist(url), []}, http_options, body_format: :binary) do
        {:ok, {{_, 200, _}, _headers, body}} ->
          {:ok, body}

        {:ok, {{_, status, reason}, _headers, _body}} ->
          {:error, "GET #{url} answered #{status} #{reason}"}

        {:error, reason} ->
          {:error, "GET #{url} failed: #{inspect(reason)}"}
      end
    else
      {:error, reason} -> {:error, "cannot start OTP's HTTP client: #{inspect(reason)}"}
    end
  end

  defp tls_options(false), do: []

  defp tls_options(true) do
    [
      ssl: [
        verify: :verify_peer,
        cacerts: :public_key.cacerts_get(),
        depth: 4,
        customize_hostname_check: [
          match_fun: :public_key.pkix_verify_hostname_match_fun(:https)
        ]
      ]
    ]
  end

  # Mix 1.15+ puts only declared applications on the code path; this
  # runs inside whatever project compiles Wasmbeam, which need not
  # declare :inets or :crypto (Mix 1.14 has all of OTP on the path and no
  # Mix.ensure_application!/1).
  defp ensure_loaded(app) do
    if function_exported?(Mix, :ensure_application!, 1),
      do: apply(Mix, :ensure_application!, [app])

    :ok
  end
end
