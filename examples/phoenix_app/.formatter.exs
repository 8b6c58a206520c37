[
  import_deps: [:ecto, :ecto_sql, :phoenix],
  inputs: ["*.exs", "{config,lib,priv,test,bench}/**/*.{ex,exs}"]
]
