defmodule MyApp.Test.HTTP do
  @moduledoc false
  # A minimal HTTP/1.1 client over :gen_tcp, so that tests control the
  # socket: send a request and close it before the answer (a client that
  # disconnects), or read an answer whole.

  @spec get(String.t()) :: {pos_integer(), String.t(), String.t()}
  def get(path) do
    {:ok, socket} = connect()
    :ok = :gen_tcp.send(socket, request(path))
    response = read_all(socket, [])
    [head, body] = String.split(response, "\r\n\r\n", parts: 2)
    ["HTTP/1.1 " <> <<status::binary-size(3)>> <> _ | headers] = String.split(head, "\r\n")

    content_type =
      Enum.find_value(headers, "", fn header ->
        case String.split(header, ": ", parts: 2) do
          [name, value] -> if String.downcase(name) == "content-type", do: value
          _ -> nil
        end
      end)

    {String.to_integer(status), content_type, body}
  end

  @spec get_json(String.t()) :: {pos_integer(), term()}
  def get_json(path) do
    {status, "application/json" <> _, body} = get(path)
    {status, Jason.decode!(body)}
  end

  @spec connect() :: {:ok, :gen_tcp.socket()}
  def connect,
    do: :gen_tcp.connect({127, 0, 0, 1}, MyAppWeb.Endpoint.port(), [:binary, active: false])

  @spec request(String.t()) :: String.t()
  def request(path),
    do: "GET #{path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"

  defp read_all(socket, acc) do
    case :gen_tcp.recv(socket, 0, 30_000) do
      {:ok, data} -> read_all(socket, [acc | data])
      {:error, :closed} -> IO.iodata_to_binary(acc)
    end
  end
end
