defmodule Consumer.Application do
  @moduledoc false
  # Stands for an application whose supervision tree needs a database:
  # it does not start without one.
  use Application

  @impl true
  def start(_type, _args) do
    case Application.fetch_env(:consumer, :database_url) do
      {:ok, _url} -> Supervisor.start_link([], strategy: :one_for_one, name: Consumer.Supervisor)
      :error -> raise "Consumer.Application cannot start: no database configured"
    end
  end
end
