# Load on the app as it runs, in one VM (the clients too), with figures
# compared within the run:
#
#   HTTP: 1,000 concurrent keep-alive clients (plain :gen_tcp, HTTP/1.1)
#   against (a) GET /api/ping, a constant: the Phoenix + Bandit floor,
#   (b) GET /api/fib/20, the pooled trusted plugin, (c) GET
#   /api/sandbox/squares?n=20, the untrusted plugin in a fresh sandbox per
#   request. First with the app's pools as configured (capacity 8 and 16
#   waiting, resp. 4 and 8: most of 1,000 clients are refused with a fast
#   503, by design), then with pools of the same size that let every
#   client wait (max_waiting 1,000), so that the 200s can be compared.
#
#   Oban: 10,000 jobs at queue concurrency 20 of MyApp.Workers.RunPlugin
#   (fib(20) from MyApp.JobPlugins, here a pool of 20) beside 10,000 of a
#   no-op worker, on a separate Oban instance and queue.
#
# Run (PostgreSQL from ../../../shared/vendor/pg.sh, env.sh sourced, Elixir
# 1.18.4 on PATH; see README.md):
#
#   MIX_ENV=test mix do ecto.create --quiet + ecto.migrate --quiet + run bench/phoenix_load.exs
#
# Environment: BENCH_SECONDS (per HTTP phase, default 5), BENCH_CLIENTS
# (default 1000), BENCH_JOBS (default 10000).

defmodule Bench.Client do
  # One keep-alive connection, requests one after another until the
  # deadline; answers {statuses, latencies in us}.
  def run(port, path, deadline) do
    {:ok, socket} = connect(port)
    request = "GET #{path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"
    loop(socket, port, request, deadline, %{}, [])
  end

  defp connect(port) do
    :gen_tcp.connect({127, 0, 0, 1}, port, [:binary, active: false, packet: :http_bin], 10_000)
  end

  defp loop(socket, port, request, deadline, statuses, latencies) do
    if System.monotonic_time(:millisecond) >= deadline do
      :gen_tcp.close(socket)
      {statuses, latencies}
    else
      start = System.monotonic_time(:microsecond)
      :ok = :gen_tcp.send(socket, request)

      case read_response(socket) do
        {:ok, status} ->
          latency = System.monotonic_time(:microsecond) - start

          loop(socket, port, request, deadline, Map.update(statuses, status, 1, &(&1 + 1)), [
            {status, latency} | latencies
          ])

        {:error, _} ->
          :gen_tcp.close(socket)
          {:ok, socket} = connect(port)

          loop(
            socket,
            port,
            request,
            deadline,
            Map.update(statuses, :closed, 1, &(&1 + 1)),
            latencies
          )
      end
    end
  end

  defp read_response(socket) do
    with {:ok, {:http_response, _, status, _}} <- :gen_tcp.recv(socket, 0, 60_000),
         {:ok, length} <- headers(socket, 0),
         :ok <- :inet.setopts(socket, packet: :raw),
         {:ok, _body} <- body(socket, length),
         :ok <- :inet.setopts(socket, packet: :http_bin) do
      {:ok, status}
    end
  end

  defp body(_socket, 0), do: {:ok, ""}
  defp body(socket, length), do: :gen_tcp.recv(socket, length, 60_000)

  defp headers(socket, length) do
    case :gen_tcp.recv(socket, 0, 60_000) do
      {:ok, {:http_header, _, :"Content-Length", _, value}} ->
        headers(socket, String.to_integer(value))

      {:ok, {:http_header, _, _, _, _}} ->
        headers(socket, length)

      {:ok, :http_eoh} ->
        {:ok, length}

      other ->
        {:error, other}
    end
  end
end

defmodule Bench do
  def http(label, path, clients, seconds) do
    port = MyAppWeb.Endpoint.port()
    load_before = load()
    deadline = System.monotonic_time(:millisecond) + seconds * 1000
    started = System.monotonic_time(:microsecond)

    results =
      1..clients
      |> Enum.map(fn _ -> Task.async(fn -> Bench.Client.run(port, path, deadline) end) end)
      |> Task.await_many(:infinity)

    elapsed = (System.monotonic_time(:microsecond) - started) / 1_000_000

    statuses =
      Enum.reduce(results, %{}, fn {s, _}, acc -> Map.merge(acc, s, fn _, a, b -> a + b end) end)

    by_status =
      results |> Enum.flat_map(&elem(&1, 1)) |> Enum.group_by(&elem(&1, 0), &elem(&1, 1))

    ok = by_status |> Map.get(200, []) |> Enum.sort() |> List.to_tuple()
    refused = by_status |> Map.get(503, []) |> Enum.sort() |> List.to_tuple()

    refused_text =
      if tuple_size(refused) > 0,
        do:
          "   503: #{round(tuple_size(refused) / elapsed)}/s, p50 #{ms(percentile(refused, 0.5))}",
        else: ""

    IO.puts(
      String.pad_trailing(label, 44) <>
        String.pad_leading("#{round(tuple_size(ok) / elapsed)} ok/s", 12) <>
        "   p50 #{ms(percentile(ok, 0.5))}   p99 #{ms(percentile(ok, 0.99))}" <>
        refused_text <> "   statuses #{inspect(statuses)}   load #{load_before} -> #{load()}"
    )
  end

  def jobs(label, worker_changesets, n) do
    counter = :atomics.new(1, [])
    parent = self()
    id = "bench-#{label}"

    :telemetry.attach(
      id,
      [:oban, :job, :stop],
      fn _, _, %{conf: %{name: Bench.Oban}}, _ ->
        if :atomics.add_get(counter, 1, 1) == n, do: send(parent, :all_done)
      end,
      nil
    )

    load_before = load()
    started = System.monotonic_time(:microsecond)

    worker_changesets
    |> Stream.chunk_every(1_000)
    |> Enum.each(&Oban.insert_all(Bench.Oban, &1))

    receive do
      :all_done -> :ok
    after
      600_000 -> raise "jobs did not finish: #{:atomics.get(counter, 1)} of #{n}"
    end

    elapsed = (System.monotonic_time(:microsecond) - started) / 1_000_000
    :telemetry.detach(id)

    IO.puts(
      String.pad_trailing(label, 44) <>
        String.pad_leading("#{round(n / elapsed)} jobs/s", 14) <>
        "   #{n} jobs in #{Float.round(elapsed, 2)} s (insert included)   load #{load_before} -> #{load()}"
    )
  end

  defp percentile({}, _q), do: 0

  defp percentile(sorted, q),
    do: elem(sorted, min(tuple_size(sorted) - 1, floor(q * tuple_size(sorted))))

  defp ms(us), do: "#{:erlang.float_to_binary(us / 1000, decimals: 2)} ms"
  def load, do: File.read!("/proc/loadavg") |> String.split() |> hd()

  # Replaces a pool of the app's tree by one with other options.
  def replace_pool(name, options) do
    :ok = Supervisor.terminate_child(MyApp.Supervisor, name)
    :ok = Supervisor.delete_child(MyApp.Supervisor, name)
    {:ok, _} = Supervisor.start_child(MyApp.Supervisor, {Wasmbeam.Pool, [name: name] ++ options})
  end
end

defmodule Bench.Noop do
  use Oban.Worker, queue: :bench
  @impl Oban.Worker
  def perform(_job), do: :ok
end

seconds = String.to_integer(System.get_env("BENCH_SECONDS", "5"))
clients = String.to_integer(System.get_env("BENCH_CLIENTS", "1000"))
n_jobs = String.to_integer(System.get_env("BENCH_JOBS", "10000"))
Logger.configure(level: :error)

IO.puts(
  "#{System.schedulers_online()} schedulers, Elixir #{System.version()}, OTP #{System.otp_release()}, " <>
    "#{clients} keep-alive clients, #{seconds} s per phase, load average #{Bench.load()}\n"
)

IO.puts("HTTP, the app's pools as configured (capacity + waiting room, then 503):")
Bench.http("(a) GET /api/ping (constant)", "/api/ping", clients, seconds)
Bench.http("(b) GET /api/fib/20 (pool, reuse)", "/api/fib/20", clients, seconds)

Bench.http(
  "(c) GET /api/sandbox/squares?n=20 (fresh)",
  "/api/sandbox/squares?n=20",
  clients,
  seconds
)

kernels = Wasmbeam.Module.compile!(File.read!(MyApp.PluginConfig.path("kernels.wat")))
{:ok, metered} = Wasmbeam.Engine.new(consume_fuel: true)

untrusted =
  Wasmbeam.Module.compile!(metered, File.read!(MyApp.PluginConfig.path("untrusted.wat")))

Bench.replace_pool(MyApp.Plugins,
  module: kernels,
  size: 4,
  max_overflow: 4,
  max_waiting: clients,
  checkout_timeout: 60_000
)

Bench.replace_pool(MyApp.Sandbox,
  module: untrusted,
  size: 2,
  max_overflow: 2,
  max_waiting: clients,
  checkout_timeout: 60_000,
  policy: :fresh,
  instance_options: [memory_size: 1_048_576, wasi: [stdout: {:capture, 4_096}]]
)

IO.puts("\nHTTP, same pool sizes, every client may wait (max_waiting #{clients}):")
Bench.http("(a) GET /api/ping (constant)", "/api/ping", clients, seconds)
Bench.http("(b) GET /api/fib/20 (pool, reuse)", "/api/fib/20", clients, seconds)

Bench.http(
  "(c) GET /api/sandbox/squares?n=20 (fresh)",
  "/api/sandbox/squares?n=20",
  clients,
  seconds
)

# Oban: a queue of 20 on an instance of its own; the jobs' pool sized to it.
Bench.replace_pool(MyApp.JobPlugins, module: kernels, size: 20, max_overflow: 0, max_waiting: 0)
MyApp.Repo.delete_all(Oban.Job)

{:ok, _} =
  Oban.start_link(
    name: Bench.Oban,
    repo: MyApp.Repo,
    queues: [bench: 20],
    plugins: [],
    node: "bench"
  )

IO.puts("\nOban, #{n_jobs} jobs at queue concurrency 20:")
Bench.jobs("no-op worker", Enum.map(1..n_jobs, fn _ -> Bench.Noop.new(%{}) end), n_jobs)
MyApp.Repo.delete_all(Oban.Job)

Bench.jobs(
  "RunPlugin fib(20) via Wasmbeam.Job",
  Enum.map(1..n_jobs, fn _ ->
    MyApp.Workers.RunPlugin.new(%{"export" => "fib", "args" => [20]}, queue: :bench)
  end),
  n_jobs
)

MyApp.Repo.delete_all(Oban.Job)
