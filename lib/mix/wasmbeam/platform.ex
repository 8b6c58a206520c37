defmodule Mix.Wasmbeam.Platform do
  @moduledoc """
  The per-OS facts the NIF build depends on, in one place, as plain data:
  what cargo calls the library it builds, what the BEAM looks for when it
  loads it, and how cargo must be asked to link it.

  `for_os/2` is a pure function of `:os.type/0`'s answer, so every branch
  is unit-tested on any machine (`test/mix/wasmbeam_platform_test.exs`).

  | OS | cargo builds | installed as | cargo command |
  |---|---|---|---|
  | Linux | `lib<crate>.so` | `lib<crate>.so` | `cargo build` |
  | macOS | `lib<crate>.dylib` | `lib<crate>.so` | `cargo rustc ... -- -C link-arg=-undefined -C link-arg=dynamic_lookup` |
  | other Unix | as Linux | as Linux | as Linux |
  | Windows, others | unsupported: a clear compile error |

  Why each decision, and what was verified where:

    * **Installed name.** `Wasmbeam.Native` loads
      `priv/native/libwasmbeam` with `:erlang.load_nif/2`, which appends
      the OS's extension itself: its documentation says the path is the
      library "minus the OS-dependent file extension (.so for Unix and .dll
      for Windows)" (https://www.erlang.org/doc/apps/erts/erlang#load_nif/2),
      and ERTS's Unix loader, which macOS uses too, appends a fixed `".so"`
      (`#define FILE_EXT ".so"` in `erts/emulator/sys/unix/erl_unix_sys_ddll.c`).
      So the library is installed as `.so` on macOS as well, under the name
      it was loaded by on Linux. Verified on Linux (Debian 12, OTP 25): the
      NIF loads from that name. Not run on macOS.
    * **Built name.** Cargo names a `cdylib` `lib<name>.so` on Linux and
      the other ELF Unixes and `lib<name>.dylib` on macOS. Verified on
      Linux; the macOS name is cargo's documented convention, not run here.
    * **Linker flags on macOS.** A NIF refers to `enif_*` functions that
      only the loading VM defines, and Apple's linker refuses undefined
      symbols in a dynamic library unless told `-undefined dynamic_lookup`.
      The flags go to the NIF crate only, through `cargo rustc ... --`,
      so the dependencies are not rebuilt with other flags and a user's
      own `RUSTFLAGS` is left alone. Rustler 0.39 on macOS looks the
      `enif_*` functions up with `dlsym` at load time instead of linking
      them (its `src/sys/nif_filler.rs`), so with it the flag is a
      safeguard rather than a necessity; it costs nothing when there is
      nothing undefined (recent Apple linkers may print a warning about
      chained fixups). Not run on macOS: no macOS machine here.
    * **Other Unixes** (FreeBSD, ...) are ELF systems with Linux's naming
      and no extra flags; that is how the build treated them before this
      module existed, and it is kept, untested.
    * **Windows** would need a `.dll` under another name and is refused
      with a clear error rather than attempted.
  """

  @typedoc "What the build needs to know about one OS."
  @type t :: %{
          os: :linux | :macos | :unix,
          built: String.t(),
          installed: String.t(),
          cargo_command: String.t(),
          rustc_args: [String.t()]
        }

  @macos_link_args ["-C", "link-arg=-undefined", "-C", "link-arg=dynamic_lookup"]

  @doc """
  The build facts for `os_type` (as `:os.type/0` answers) and the crate
  named `crate`.

      iex> {:ok, linux} = Mix.Wasmbeam.Platform.for_os({:unix, :linux}, "wasmbeam")
      iex> {linux.built, linux.installed, linux.rustc_args}
      {"libwasmbeam.so", "libwasmbeam.so", []}

      iex> {:ok, macos} = Mix.Wasmbeam.Platform.for_os({:unix, :darwin}, "wasmbeam")
      iex> {macos.built, macos.installed}
      {"libwasmbeam.dylib", "libwasmbeam.so"}

      iex> {:error, message} = Mix.Wasmbeam.Platform.for_os({:win32, :nt}, "wasmbeam")
      iex> message =~ "not supported"
      true
  """
  @spec for_os(term(), String.t()) :: {:ok, t()} | {:error, String.t()}
  def for_os({:unix, :linux}, crate), do: {:ok, elf(:linux, crate)}

  def for_os({:unix, :darwin}, crate) do
    {:ok,
     %{
       os: :macos,
       built: "lib#{crate}.dylib",
       installed: "lib#{crate}.so",
       cargo_command: "rustc",
       rustc_args: @macos_link_args
     }}
  end

  def for_os({:unix, _other}, crate), do: {:ok, elf(:unix, crate)}

  def for_os(other, _crate) do
    {:error,
     "building Wasmbeam's NIF on #{inspect(other)} is not supported: " <>
       "Linux and macOS are (see Mix.Wasmbeam.Platform)"}
  end

  defp elf(os, crate) do
    %{
      os: os,
      built: "lib#{crate}.so",
      installed: "lib#{crate}.so",
      cargo_command: "build",
      rustc_args: []
    }
  end

  @doc """
  The build facts for the OS this VM runs on.
  """
  @spec current(String.t()) :: {:ok, t()} | {:error, String.t()}
  def current(crate), do: for_os(:os.type(), crate)

  @doc """
  The arguments for cargo that build `crate` with `profile` on `platform`.

      iex> {:ok, linux} = Mix.Wasmbeam.Platform.for_os({:unix, :linux}, "wasmbeam")
      iex> Mix.Wasmbeam.Platform.cargo_args(linux, "wasmbeam", "release")
      ["build", "--profile", "release", "-p", "wasmbeam", "--color", "always"]
  """
  @spec cargo_args(t(), String.t(), String.t()) :: [String.t()]
  def cargo_args(%{cargo_command: "build", rustc_args: []}, crate, profile),
    do: ["build", "--profile", profile, "-p", crate, "--color", "always"]

  def cargo_args(%{cargo_command: "rustc", rustc_args: rustc_args}, crate, profile),
    do:
      ["rustc", "--profile", profile, "-p", crate, "--lib", "--color", "always", "--"] ++
        rustc_args

  @doc """
  A name for the machine a built NIF runs on, for prebuilt archives:
  the CPU architecture and the OS (and, on Linux, the C library), from an
  `:erlang.system_info(:system_architecture)` string.

      iex> Mix.Wasmbeam.Platform.target({:unix, :linux}, "x86_64-pc-linux-gnu")
      "x86_64-linux-gnu"
      iex> Mix.Wasmbeam.Platform.target({:unix, :linux}, "aarch64-unknown-linux-musl")
      "aarch64-linux-musl"
      iex> Mix.Wasmbeam.Platform.target({:unix, :darwin}, "aarch64-apple-darwin23.4.0")
      "aarch64-macos"
  """
  @spec target(term(), String.t()) :: String.t()
  def target(os_type, system_architecture) do
    [arch | rest] = String.split(system_architecture, "-")

    case os_type do
      {:unix, :linux} ->
        libc = if Enum.any?(rest, &String.contains?(&1, "musl")), do: "musl", else: "gnu"
        "#{arch}-linux-#{libc}"

      {:unix, :darwin} ->
        "#{arch}-macos"

      {family, name} ->
        "#{arch}-#{family}-#{name}"
    end
  end

  @doc "The `target/2` of this VM."
  @spec current_target() :: String.t()
  def current_target,
    do: target(:os.type(), to_string(:erlang.system_info(:system_architecture)))
end
