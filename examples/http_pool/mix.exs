defmodule HttpPool.MixProject do
  # An OTP application that serves HTTP requests from a pool of WebAssembly
  # instances: one request, one checkout, one call. No hex packages: the
  # HTTP side is OTP's :gen_tcp with the runtime's HTTP packet parser.
  use Mix.Project

  def project do
    [
      app: :http_pool,
      version: "0.1.0",
      elixir: "~> 1.14",
      deps: [{:wasmbeam, path: "../.."}]
    ]
  end

  def application do
    [extra_applications: [:logger], mod: {HttpPool.Application, []}]
  end
end
