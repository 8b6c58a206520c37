import Config

# Port 0: Bandit picks a free port; the tests ask the endpoint for it.
config :my_app, MyAppWeb.Endpoint, http: [ip: {127, 0, 0, 1}, port: 0]

# The tests start their own Oban instances where they need special queues;
# the application's one runs the `wasm` queue.
config :my_app, Oban, queues: [wasm: 4], shutdown_grace_period: 500
