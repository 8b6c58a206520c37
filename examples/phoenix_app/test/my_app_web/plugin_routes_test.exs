defmodule MyAppWeb.PluginRoutesTest do
  # Real HTTP over TCP to the Phoenix endpoint (Bandit on 127.0.0.1) that
  # `mix test` started with the application. Not async: the tests share
  # the app's pools and some count on their figures.
  use ExUnit.Case, async: false

  import MyApp.Test.HTTP
  import MyApp.Test.Pools

  describe "the pooled trusted plugin" do
    test "answers each request from a warm instance" do
      %{created: created_before} = Wasmbeam.Pool.stats!(MyApp.Plugins)

      for n <- [0, 1, 2, 10, 30, 90] do
        assert get_json("/api/fib/#{n}") == {200, %{"result" => fib(n)}}
      end

      # No request made an instance: the pool's 4 served them all.
      assert %{created: ^created_before, in_use: 0, policy: :reuse} =
               Wasmbeam.Pool.stats!(MyApp.Plugins)
    end

    test "maps bad input, traps and timeouts to 400, 422 and 504" do
      assert {400, %{"error" => "n must be a non-negative integer"}} = get_json("/api/fib/ten")
      assert {400, _} = get_json("/api/fib/-1")
      # Past i64: the library refuses the argument.
      assert {400, %{"error" => "type"}} = get_json("/api/fib/#{2 ** 64}")
      assert {422, %{"error" => "trap", "message" => message}} = get_json("/api/div/7/0")
      assert message =~ "divide by zero"
      assert get_json("/api/div/-7/2") == {200, %{"result" => -3}}
      assert {504, %{"error" => "timeout"}} = get_json("/api/spin?timeout=20")
      assert {400, _} = get_json("/api/spin?timeout=0")
      assert {404, _, _} = get("/api/nope")
      # The instances that trapped and timed out serve the next requests.
      assert_all_free(MyApp.Plugins, "fib", [20], [6765])
    end

    test "10x more concurrent requests than the pool holds: fast 503s, no crash" do
      %{size: size, max_overflow: overflow} = Wasmbeam.Pool.stats!(MyApp.Plugins)
      capacity = size + overflow
      endpoint = Process.whereis(MyAppWeb.Endpoint)
      pool = Process.whereis(MyApp.Plugins)

      statuses =
        1..(10 * capacity)
        |> Task.async_stream(fn _ -> elem(get_json("/api/spin?timeout=300"), 0) end,
          max_concurrency: 10 * capacity,
          timeout: 30_000
        )
        |> Enum.map(fn {:ok, status} -> status end)

      frequencies = Enum.frequencies(statuses)
      # At most capacity run and max_waiting (16) wait (then run, or give
      # up waiting): those end in 504; everyone else is refused with 503.
      assert Map.keys(frequencies) -- [503, 504] == []
      assert frequencies[503] >= 10 * capacity - capacity - 16
      assert frequencies[504] >= capacity
      assert Process.whereis(MyAppWeb.Endpoint) == endpoint
      assert Process.whereis(MyApp.Plugins) == pool
      assert get_json("/api/fib/10") == {200, %{"result" => 55}}
      assert_all_free(MyApp.Plugins, "fib", [10], [55])
      assert %{in_use: 0, waiting: 0} = Wasmbeam.Pool.stats!(MyApp.Plugins)
    end
  end

  describe "a request process that dies mid-call" do
    setup do
      Wasmbeam.Telemetry.call_events(true)
      test = self()
      id = "dies-mid-call-#{System.unique_integer()}"

      :telemetry.attach_many(
        id,
        [[:wasmbeam, :call, :start], [:wasmbeam, :call, :stop]],
        fn
          [:wasmbeam, :call, edge], _, %{export: "spin"} = meta, _ ->
            send(test, {:spin, edge, self(), meta[:error]})

          _event, _, _, _ ->
            :ok
        end,
        nil
      )

      on_exit(fn ->
        :telemetry.detach(id)
        Wasmbeam.Telemetry.call_events(false)
      end)
    end

    test "cancels its guest: the instance is free again, nothing ran on" do
      {:ok, socket} = connect()
      :ok = :gen_tcp.send(socket, request("/api/spin?timeout=60000"))
      # The guest has started in the request's process (Bandit's handler).
      assert_receive {:spin, :start, request, nil}, 5_000
      assert %{in_use: in_use} = Wasmbeam.Pool.stats!(MyApp.Plugins)
      assert in_use >= 1

      # What a torn-down connection does to its handler: the process dies.
      monitor = Process.monitor(request)
      :ok = :gen_tcp.close(socket)
      Process.exit(request, :kill)
      assert_receive {:DOWN, ^monitor, :process, ^request, :killed}

      # Every instance answers at once (a store still running `spin`
      # would answer :busy), well before the 60 s deadline; the call
      # never ended with a :stop, and the pool made no replacement.
      assert_all_free(MyApp.Plugins, "fib", [12], [144])
      refute_received {:spin, :stop, ^request, _}
      assert %{in_use: 0} = Wasmbeam.Pool.stats!(MyApp.Plugins)
    end

    # Bandit serves an HTTP/1.1 request in the connection's process and
    # reads the socket only between requests: a client that goes away
    # while its request runs is not noticed until the answer is written.
    # So a disconnect alone does not stop the guest; the request's
    # deadline does. (This is why every route passes `timeout:`.)
    test "a client that only disconnects: its guest runs to the deadline, then stops" do
      {:ok, socket} = connect()
      :ok = :gen_tcp.send(socket, request("/api/spin?timeout=300"))
      assert_receive {:spin, :start, request, nil}, 5_000
      monitor = Process.monitor(request)
      :ok = :gen_tcp.close(socket)

      assert_receive {:spin, :stop, ^request, %Wasmbeam.Error{kind: :timeout}}, 5_000
      # Only then does the connection's process answer (into a closed socket) and end.
      assert_receive {:DOWN, ^monitor, :process, ^request, _reason}, 5_000
      assert_all_free(MyApp.Plugins, "fib", [12], [144])
    end
  end

  describe "the untrusted plugin in a fresh sandbox per request" do
    test "runs the honest export, with its stdout, in a new instance each time" do
      %{created: before} = Wasmbeam.Pool.stats!(MyApp.Sandbox)

      for n <- [0, 3, 10] do
        expected = Enum.sum(for i <- 1..n//1, do: i * i)

        assert get_json("/api/sandbox/squares?n=#{n}") ==
                 {200, %{"result" => expected, "stdout" => "hello from the sandbox\n"}}
      end

      # :fresh: each request used an instance nobody used before (the pool
      # replaces them after use).
      assert %{created: created, policy: :fresh} = Wasmbeam.Pool.stats!(MyApp.Sandbox)
      assert created >= before + 3
    end

    test "contains loops, traps, memory hogs and stdout floods" do
      assert {422, %{"error" => "out_of_fuel"}} = get_json("/api/sandbox/loop")
      assert {422, %{"error" => "trap", "message" => trap}} = get_json("/api/sandbox/crash")
      assert trap =~ "unreachable"
      # memory.grow is refused at the pool's 1 MiB limit: 16 pages.
      assert get_json("/api/sandbox/hog") ==
               {200, %{"result" => div(1_048_576, 65_536), "stdout" => ""}}

      assert {422, %{"error" => error, "message" => flood}} = get_json("/api/sandbox/flood")
      assert error == "trap"
      assert flood =~ "stdout"
      assert {404, %{"error" => "not_found"}} = get_json("/api/sandbox/nope")
      assert {400, %{"error" => "argument"}} = get_json("/api/sandbox/squares?n=x")
      # The app still serves.
      assert {200, %{"result" => 1}} = get_json("/api/sandbox/squares?n=1")
    end

    test "a guest with fuel to spare is stopped by its deadline (504)" do
      Application.put_env(:my_app, :sandbox, fuel: 1_000_000_000_000_000, timeout: 30)
      on_exit(fn -> Application.delete_env(:my_app, :sandbox) end)
      assert {504, %{"error" => "timeout"}} = get_json("/api/sandbox/loop")
    end
  end

  describe "the HTML page and the stats" do
    test "the form runs an export and shows its result or its error" do
      assert {200, "text/html" <> _, page} = get("/")
      assert page =~ ~s(<form method="get" action="/">)
      assert page =~ ~s(<option value="flood">)

      assert {200, _, page} = get("/?export=squares&n=3")
      assert page =~ ~s{<p class="result">squares(3) = 14</p>}
      assert page =~ ~s(<pre class="stdout">hello from the sandbox\n</pre>)

      assert {422, _, page} = get("/?export=crash&n=1")
      assert page =~ ~s(<p class="error">422 trap: )

      # Input is escaped wherever the page shows it.
      assert {400, _, page} = get("/?export=squares&n=%3Cscript%3E")
      refute page =~ "<script>"
      assert page =~ "&lt;script&gt;"
    end

    test "/api/stats gives both pools' figures" do
      assert {200, %{"plugins" => plugins, "sandbox" => sandbox}} = get_json("/api/stats")
      assert plugins["size"] == 4 and plugins["policy"] == "reuse"
      assert sandbox["size"] == 2 and sandbox["policy"] == "fresh"
      assert plugins["in_use"] == 0

      for key <- ~w(instances idle waiting created discarded max_overflow),
          do: assert(is_integer(plugins[key]), key)
    end
  end

  defp fib(n), do: fib(n, 0, 1)
  defp fib(0, a, _b), do: a
  defp fib(n, a, b), do: fib(n - 1, b, rem(a + b + 2 ** 63, 2 ** 64) - 2 ** 63)
end
