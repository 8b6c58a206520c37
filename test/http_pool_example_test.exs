defmodule Wasmbeam.HttpPoolExampleTest do
  # The request-per-call pattern end to end: examples/http_pool (a separate
  # Mix project that depends on wasmbeam by path) is built and started as
  # its own OS process; this test makes real HTTP requests to it with :httpc.
  use ExUnit.Case, async: true

  @moduletag :example
  @moduletag timeout: 600_000

  @app Path.expand("../examples/http_pool", __DIR__)

  setup_all do
    # :inets (for :httpc) is this test's own; test_helper.exs puts it on
    # the code path.
    {:ok, _} = Application.ensure_all_started(:inets)
    mix = System.find_executable("mix")

    port =
      Port.open({:spawn_executable, mix}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        line: 4096,
        args: ["run", "--no-halt"],
        cd: @app,
        env: [
          {~c"MIX_ENV", ~c"dev"},
          {~c"HTTP_POOL_PORT", ~c"0"},
          # The app stops when this test's end of the pipe closes.
          {~c"HTTP_POOL_EXIT_ON_EOF", ~c"1"}
        ]
      ])

    on_exit(fn -> if Port.info(port), do: Port.close(port) end)
    %{base: "http://127.0.0.1:#{await_listening(port, [])}"}
  end

  defp await_listening(port, output) do
    receive do
      {^port, {:data, {_, "http_pool listening on port " <> number}}} ->
        String.to_integer(number)

      {^port, {:data, {_, line}}} ->
        await_listening(port, [line | output])

      {^port, {:exit_status, status}} ->
        flunk("the example exited with #{status}:\n" <> Enum.join(Enum.reverse(output), "\n"))
    after
      590_000 -> flunk("the example did not start:\n" <> Enum.join(Enum.reverse(output), "\n"))
    end
  end

  defp get(base, path) do
    {:ok, {{_, status, _}, _headers, body}} =
      :httpc.request(:get, {String.to_charlist(base <> path), []}, [timeout: 10_000], [])

    {status, to_string(body)}
  end

  test "a request is a call on a pooled instance", %{base: base} do
    assert get(base, "/fib/30") == {200, "832040\n"}
    assert get(base, "/fib/90") == {200, "2880067194370816120\n"}
  end

  test "bad input, unknown paths and runaway guests get HTTP errors", %{base: base} do
    assert {400, _} = get(base, "/fib/minus-one")
    assert {404, _} = get(base, "/nope")
    assert {504, body} = get(base, "/spin")
    assert body =~ "timeout"
    # The instance that timed out serves the next request.
    assert get(base, "/fib/10") == {200, "55\n"}
  end

  test "many concurrent requests are all served", %{base: base} do
    results =
      1..100
      |> Task.async_stream(&get(base, "/fib/#{rem(&1, 50)}"), max_concurrency: 50, timeout: 30_000)
      |> Enum.map(fn {:ok, result} -> result end)

    expected = Enum.map(1..100, &{200, "#{fib(rem(&1, 50))}\n"})
    assert results == expected

    {200, stats} = get(base, "/stats")
    assert stats =~ "size 4"
    assert stats =~ "policy reuse"
  end

  defp fib(n), do: fib(n, 0, 1)
  defp fib(0, a, _), do: a
  defp fib(n, a, b), do: fib(n - 1, b, a + b)
end
