defmodule Mix.Wasmbeam.PlatformTest do
  use ExUnit.Case, async: true

  alias Mix.Wasmbeam.Platform

  doctest Platform

  test "Linux: cargo build, lib<crate>.so built and installed, no extra flags" do
    {:ok, p} = Platform.for_os({:unix, :linux}, "wasmbeam")
    assert %{os: :linux, built: "libwasmbeam.so", installed: "libwasmbeam.so"} = p

    # The command the compiler ran before per-OS decisions existed.
    assert Platform.cargo_args(p, "wasmbeam", "quick") ==
             ["build", "--profile", "quick", "-p", "wasmbeam", "--color", "always"]
  end

  test "macOS: cargo builds a .dylib, installed as .so, linked with dynamic lookup" do
    {:ok, p} = Platform.for_os({:unix, :darwin}, "wasmbeam")
    assert %{os: :macos, built: "libwasmbeam.dylib", installed: "libwasmbeam.so"} = p

    args = Platform.cargo_args(p, "wasmbeam", "release")
    assert ["rustc", "--profile", "release", "-p", "wasmbeam", "--lib" | _] = args

    # The linker flags reach rustc for the NIF crate only: after `--`.
    {_cargo, ["--" | rustc]} = Enum.split_while(args, &(&1 != "--"))
    assert rustc == ["-C", "link-arg=-undefined", "-C", "link-arg=dynamic_lookup"]
  end

  test "other Unixes are treated as Linux; Windows and unknown inputs are refused" do
    assert {:ok, %{os: :unix, built: "libx.so", installed: "libx.so", rustc_args: []}} =
             Platform.for_os({:unix, :freebsd}, "x")

    for other <- [{:win32, :nt}, {:ose, :whatever}, :unknown, nil] do
      assert {:error, message} = Platform.for_os(other, "wasmbeam")
      assert message =~ "not supported"
      assert message =~ inspect(other)
    end
  end

  test "the installed name is what Wasmbeam.Native loads on this machine" do
    {:ok, p} = Platform.current("wasmbeam")
    # load_nif/2 appends ".so" on every Unix, macOS included.
    assert p.installed == "libwasmbeam.so"
    assert File.regular?(Path.join(:code.priv_dir(:wasmbeam), "native/" <> p.installed))
  end

  test "targets name the CPU, the OS and, on Linux, the C library" do
    assert Platform.target({:unix, :linux}, "x86_64-pc-linux-gnu") == "x86_64-linux-gnu"
    assert Platform.target({:unix, :darwin}, "x86_64-apple-darwin21.6.0") == "x86_64-macos"
    assert Platform.target({:unix, :freebsd}, "amd64-portbld-freebsd14.0") == "amd64-unix-freebsd"
    assert Platform.current_target() =~ ~r/^[a-z0-9_]+-/
  end
end
