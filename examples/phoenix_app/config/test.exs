import Config

# Port 0: Bandit picks a free port; the tests ask the endpoint for it.
config :my_app, MyAppWeb.Endpoint, http: [ip: {127, 0, 0, 1}, port: 0]

# A job stopped with its node gets 0.5 s to finish before it is killed.
config :my_app, Oban, shutdown_grace_period: 500
