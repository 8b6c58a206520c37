defmodule HttpPool.Listener do
  @moduledoc """
  Accepts TCP connections and hands each to a task under
  `HttpPool.Connections`, which serves one request and closes.
  """

  use Task, restart: :permanent
  require Logger

  @spec start_link(keyword()) :: {:ok, pid()}
  def start_link(options), do: Task.start_link(__MODULE__, :listen, [options[:port]])

  @doc false
  def listen(port) do
    {:ok, socket} =
      :gen_tcp.listen(port, [:binary, packet: :http_bin, active: false, reuseaddr: true])

    {:ok, actual} = :inet.port(socket)
    # The test that drives this app reads this line to find the port.
    IO.puts("http_pool listening on port #{actual}")
    accept(socket)
  end

  defp accept(socket) do
    {:ok, client} = :gen_tcp.accept(socket)

    {:ok, task} = Task.Supervisor.start_child(HttpPool.Connections, fn -> serve(client) end)

    :ok = :gen_tcp.controlling_process(client, task)
    send(task, :go)
    accept(socket)
  end

  defp serve(client) do
    receive do
      :go -> :ok
    end

    with {:ok, {:http_request, method, {:abs_path, path}, _version}} <-
           :gen_tcp.recv(client, 0, 5_000),
         :ok <- skip_headers(client) do
      {status, body} = HttpPool.Router.handle(method, path)
      respond(client, status, body)
    else
      _ -> respond(client, 400, "bad request\n")
    end

    :gen_tcp.close(client)
  end

  defp skip_headers(client) do
    case :gen_tcp.recv(client, 0, 5_000) do
      {:ok, {:http_header, _, _, _, _}} -> skip_headers(client)
      {:ok, :http_eoh} -> :ok
      other -> {:error, other}
    end
  end

  defp respond(client, status, body) do
    :gen_tcp.send(client, [
      "HTTP/1.1 #{status} #{reason(status)}\r\n",
      "content-type: text/plain\r\n",
      "content-length: #{byte_size(body)}\r\n",
      "connection: close\r\n\r\n",
      body
    ])
  end

  defp reason(200), do: "OK"
  defp reason(400), do: "Bad Request"
  defp reason(404), do: "Not Found"
  defp reason(422), do: "Unprocessable Entity"
  defp reason(500), do: "Internal Server Error"
  defp reason(503), do: "Service Unavailable"
  defp reason(504), do: "Gateway Timeout"
end
