import Config

# Like a Phoenix application's runtime.exs: the project cannot be
# configured without a database URL. Build machines, `mix compile` and
# `mix wasmbeam.precompile` / `mix wasmbeam.run` must not need one.
database_url =
  System.get_env("DATABASE_URL") ||
    raise "environment variable DATABASE_URL is missing"

config :consumer, database_url: database_url
