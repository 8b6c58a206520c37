defmodule Wasmbeam.MixProject do
  use Mix.Project

  @version "0.1.0"

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
      elixirc_paths: elixirc_paths(Mix.env()),
      test_coverage: [summary: [threshold: 0]],
      docs: [main: "Wasmbeam"]
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
