defmodule MyAppWeb.Endpoint do
  use Phoenix.Endpoint, otp_app: :my_app

  # [:phoenix, :endpoint, :start | :stop] around every request.
  plug Plug.Telemetry, event_prefix: [:phoenix, :endpoint]
  plug Plug.Parsers, parsers: [:urlencoded, :json], pass: ["*/*"], json_decoder: Jason
  plug MyAppWeb.Router

  @doc "The TCP port Bandit listens on (the configured one, or the one it picked for port 0)."
  @spec port() :: :inet.port_number()
  def port do
    {:ok, {_ip, port}} = server_info(:http)
    port
  end
end
