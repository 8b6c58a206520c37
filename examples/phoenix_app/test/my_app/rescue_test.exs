defmodule MyApp.RescueTest do
  # A node stopped mid-job: two more Oban instances stand for two nodes
  # (each its own name and node, one queue only they run). Node A starts a
  # long job and is stopped while the guest computes; the job is left
  # "executing" in PostgreSQL, Lifeline on node B rescues it, and node B
  # runs it again to completion.
  use ExUnit.Case, async: false

  import MyApp.Test.Jobs
  import MyApp.Test.Pools

  alias MyApp.Repo
  alias MyApp.Workers.RunPlugin

  # About 2 s of guest time on the 2-core machine: long enough to be
  # stopped halfway.
  @n 2_000_000_000

  setup do
    Repo.delete_all(Oban.Job)
    forward_job_events(RunPlugin)
    forward_guest_starts()
  end

  defp node_options(name, node, plugins) do
    [
      name: name,
      node: node,
      repo: Repo,
      queues: [rescue_demo: 1],
      plugins: plugins,
      shutdown_grace_period: 0
    ]
  end

  test "a job whose node stopped mid-run is rescued and succeeds on a rerun" do
    node_a =
      start_supervised!({Oban, node_options(MyApp.NodeA, "node-a", [])}, id: :node_a)

    changeset =
      RunPlugin.new(%{"export" => "fib", "args" => [@n], "timeout" => 60_000},
        queue: :rescue_demo
      )

    {:ok, job} = Oban.insert(MyApp.NodeA, changeset)

    assert_receive {:job, :start, id, pid, %{conf: %{node: "node-a"}}}, 10_000
    assert id == job.id
    assert_receive {:guest, "fib", ^pid}, 10_000
    monitor = Process.monitor(pid)

    # The node goes away while the guest computes.
    assert is_pid(node_a)
    :ok = stop_supervised(:node_a)
    assert_receive {:DOWN, ^monitor, :process, ^pid, _reason}, 10_000
    refute_received {:job, :stop, ^id, _, _}
    assert %{state: "executing", attempt: 1} = Repo.get!(Oban.Job, job.id)
    # Its guest stopped with it: every instance answers at once.
    assert_all_free(MyApp.JobPlugins, "fib", [10], [55])

    # Node B's Lifeline puts the orphan back, and node B runs it.
    lifeline = {Oban.Plugins.Lifeline, rescue_after: 1, interval: 100}
    start_supervised!({Oban, node_options(MyApp.NodeB, "node-b", [lifeline])}, id: :node_b)

    assert_receive {:job, :stop, ^id, _, %{state: :success, result: result, conf: conf}}, 60_000
    assert conf.node == "node-b"
    assert result == {:ok, fib_i64(@n)}
    assert %{state: "completed", attempt: 2} = Repo.get!(Oban.Job, job.id)
  end

  # The n-th Fibonacci number as the guest's i64 arithmetic gives it
  # (mod 2^64, signed), by fast doubling.
  defp fib_i64(n) do
    {f, _} = fib_pair(n)
    if f >= 2 ** 63, do: f - 2 ** 64, else: f
  end

  defp fib_pair(0), do: {0, 1}

  defp fib_pair(n) do
    {a, b} = fib_pair(div(n, 2))
    m = 2 ** 64
    c = rem(a * rem(2 * b - a + m, m), m)
    d = rem(a * a + b * b, m)
    if rem(n, 2) == 0, do: {c, d}, else: {d, rem(c + d, m)}
  end
end
