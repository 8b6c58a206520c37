defmodule MyApp.MixProject do
  # A Phoenix app (served by Bandit) with Oban workers on PostgreSQL that
  # runs WebAssembly plugins through Wasmbeam. Phoenix, Oban and their
  # dependencies come as source from ../../../shared/vendor (no hex.pm
  # here): run its unpack.sh and source the env.sh it writes first (see
  # README.md). Needs Elixir >= 1.15.
  use Mix.Project

  @vendored ~w(phoenix phoenix_pubsub phoenix_template plug plug_crypto mime websock
               websock_adapter bandit thousand_island hpax telemetry jason
               oban ecto ecto_sql postgrex db_connection decimal)a

  def project do
    [
      app: :my_app,
      version: "0.1.0",
      elixir: "~> 1.15",
      elixirc_paths: elixirc_paths(Mix.env()),
      deps: deps(),
      aliases: [test: ["ecto.create --quiet", "ecto.migrate --quiet", "test"]]
    ]
  end

  def application do
    [extra_applications: [:logger], mod: {MyApp.Application, []}]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]

  defp deps do
    vendor =
      System.get_env("VENDOR_DEPS_DIR") ||
        Mix.raise("VENDOR_DEPS_DIR is not set: run unpack.sh DEST and source DEST/env.sh")

    [{:wasmbeam, path: "../.."}] ++
      for name <- @vendored do
        {name, path: Path.join(vendor, Atom.to_string(name)), override: true}
      end
  end
end
