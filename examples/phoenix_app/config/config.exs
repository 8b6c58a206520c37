import Config

# DATABASE_URL comes from ../../../shared/vendor/pg.sh
# ("ecto://postgres:postgres@127.0.0.1:55432/"); the database name is appended.
config :my_app, ecto_repos: [MyApp.Repo]

config :my_app, MyApp.Repo,
  url:
    System.get_env("DATABASE_URL", "ecto://postgres:postgres@127.0.0.1:55432/") <>
      "wasmbeam_my_app_#{config_env()}",
  pool_size: 10

config :my_app, Oban,
  repo: MyApp.Repo,
  queues: [wasm: 2],
  plugins: []

config :my_app, MyAppWeb.Endpoint,
  adapter: Bandit.PhoenixAdapter,
  http: [ip: {127, 0, 0, 1}, port: String.to_integer(System.get_env("PORT", "4000"))],
  server: true,
  secret_key_base: String.duplicate("wasmbeam-example", 4),
  render_errors: [formats: [json: MyAppWeb.ErrorJSON], layout: false]

config :phoenix, :json_library, Jason
config :logger, level: :warning

import_config "#{config_env()}.exs"
