[
  # examples/phoenix_app is not listed: it has its own .formatter.exs,
  # which imports Phoenix's and Ecto's formatter rules from its vendored
  # dependencies, and is formatted and checked with the Elixir 1.18.4 that
  # builds it (its README says how).
  inputs: [
    "{mix,.formatter}.exs",
    "{config,lib,test,bench}/**/*.{ex,exs}",
    "examples/http_pool/**/*.{ex,exs}"
  ],
  import_deps: []
]
