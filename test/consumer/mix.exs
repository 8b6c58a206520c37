defmodule Consumer.MixProject do
  # A project that uses Wasmbeam the way an application does: as a Mix
  # dependency. test/consumer_test.exs builds it and runs Consumer.check/0.
  use Mix.Project

  def project do
    [app: :consumer, version: "0.1.0", elixir: "~> 1.14", deps: [{:wasmbeam, path: "../.."}]]
  end

  def application, do: [extra_applications: [:logger], mod: {Consumer.Application, []}]
end
