defmodule Wasmbeam.MixProject do
  use Mix.Project

  @version "0.1.0"
  @source_url "https://github.com/wasmbeam/wasmbeam"

  def project do
    [
      app: :wasmbeam,
      version: @version,
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      # The NIF crate is built by a compiler that lives in this project
      # (lib/mix/tasks/compile.wasmbeam_native.ex), so it runs after the
      # Elixir compiler has compiled it. The NIF is loaded when the
      # application starts, not by @on_load, so the order is safe.
      compilers: Mix.compilers() ++ [:wasmbeam_native],
      # No dependencies, not even an optional one: `{:telemetry, "~> 1.0",
      # optional: true}` would make every build of this project fetch it
      # from hex.pm (Mix needs Hex and `mix deps.get` for any Hex
      # requirement, optional or not), and this project builds offline.
      # Events are emitted whenever the host application has :telemetry
      # loaded (see Wasmbeam.Telemetry); the tests use the real one, built
      # from ../shared/vendor (test/support/vendored_telemetry.ex).
      deps: [],
      # Used only at compile time, by the NIF compiler fetching a prebuilt
      # NIF (Mix.Wasmbeam.Prebuilt), which loads them itself: declaring
      # them here would start :inets and :ssl in every application.
      xref: [exclude: [:httpc, :public_key, :crypto]],
      elixirc_paths: elixirc_paths(Mix.env()),
      test_coverage: [summary: [threshold: 0]],
      description:
        "WebAssembly in the BEAM: Wasmtime in a Rust NIF, with guests time-sliced " <>
          "like processes, host functions in Elixir, pools, limits, WASI and a module cache.",
      source_url: @source_url,
      package: package(),
      docs: docs()
    ]
  end

  # What `mix hex.build` puts in the package: the Elixir library, what cargo
  # needs to build the NIF on the user's machine (every workspace member's
  # manifest and sources: cargo refuses a workspace with a member missing,
  # so the spec converter and the benchmark baseline come too, small as they
  # are), and the docs. priv/ holds only build output (the NIF), so it is not
  # listed; the exclusions keep build output out should a pattern ever reach
  # it. test/mix/package_test.exs expands these lists as Hex does.
  defp package do
    [
      files: ~w(
        lib mix.exs .formatter.exs README.md LICENSE CHANGELOG.md docs/*.md
        Cargo.toml Cargo.lock native/*/Cargo.toml native/*/src
        bench/native_baseline/Cargo.toml bench/native_baseline/src
      ),
      exclude_patterns: [
        ~r{(^|/)target/},
        ~r{(^|/)_build},
        ~r{(^|/)\.cache/},
        ~r{^tmp/},
        ~r{^priv/native/},
        ~r{\.(so|dylib|dll)$}
      ],
      licenses: ["Apache-2.0"],
      links: %{"Source" => @source_url, "Changelog" => "#{@source_url}/blob/main/CHANGELOG.md"}
    ]
  end

  defp docs do
    [
      main: "readme",
      source_ref: "v#{@version}",
      source_url: @source_url,
      extras: ["README.md", "docs/ARCHITECTURE.md", "docs/RELEASES.md", "CHANGELOG.md"],
      groups_for_extras: [Guides: ["docs/ARCHITECTURE.md", "docs/RELEASES.md"]],
      groups_for_modules: [
        "Engines and modules": [
          Wasmbeam,
          Wasmbeam.Engine,
          Wasmbeam.Engine.Config,
          Wasmbeam.Module,
          Wasmbeam.LinkedModule,
          Wasmbeam.ModuleCache
        ],
        "Instances and calls": [
          Wasmbeam.Store,
          Wasmbeam.Instance,
          Wasmbeam.InstanceSupervisor,
          Wasmbeam.Pool,
          Wasmbeam.Job,
          Wasmbeam.Func,
          Wasmbeam.CallOptions
        ],
        "Host functions": [Wasmbeam.Imports, Wasmbeam.Caller],
        "Memory, globals, tables": [
          Wasmbeam.Memory,
          Wasmbeam.Global,
          Wasmbeam.Table,
          Wasmbeam.Tag,
          Wasmbeam.Types
        ],
        WASI: [~r/^Wasmbeam\.Wasi/],
        Errors: [Wasmbeam.Error],
        "Building and installing": [~r/^Mix\.Wasmbeam/]
      ]
    ]
  end

  def application do
    [
      extra_applications: [:logger],
      mod: {Wasmbeam.Application, []}
    ]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
