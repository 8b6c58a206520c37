defmodule MyApp.Workers.RunPluginTest do
  # Real Oban on PostgreSQL: jobs are inserted into the database and run by
  # the application's Oban queue `wasm`, whose worker calls
  # Wasmbeam.Job.run/4 on the MyApp.JobPlugins pool. Not async: one queue,
  # one pool, one jobs table.
  use ExUnit.Case, async: false

  import Ecto.Query
  import MyApp.Test.Jobs
  import MyApp.Test.Pools

  alias MyApp.Repo
  alias MyApp.Workers.RunPlugin

  setup do
    Repo.delete_all(Oban.Job)
    forward_job_events(RunPlugin)
    :ok
  end

  defp insert!(args), do: args |> RunPlugin.new() |> Oban.insert!()
  defp row(job), do: Repo.get!(Oban.Job, job.id)

  test "a job runs its export and completes with the guest's result" do
    job = insert!(%{"export" => "fib", "args" => [30]})
    assert_receive {:job, :stop, id, _pid, %{state: :success, result: result}}, 10_000
    assert id == job.id
    assert result == {:ok, 832_040}
    assert %{state: "completed", attempt: 1} = row(job)
  end

  test "a trap cancels the job: no retry" do
    job = insert!(%{"export" => "div", "args" => [1, 0]})
    assert_receive {:job, :stop, id, _pid, %{state: :cancelled}}, 10_000
    assert id == job.id
    assert %{state: "cancelled", attempt: 1, errors: [error]} = row(job)
    assert error["error"] =~ "divide by zero"
  end

  test "a guest timeout fails the attempt and Oban retries it later, with backoff" do
    job = insert!(%{"export" => "spin", "args" => [], "timeout" => 20})
    # Oban reports a failed attempt with an :exception event.
    assert_receive {:job, :exception, id, _pid, %{state: :failure, result: result}}, 10_000
    assert {:error, %Wasmbeam.Error{kind: :timeout}} = result
    assert id == job.id
    assert %{state: "retryable", attempt: 1, errors: [error]} = row = row(job)
    assert error["error"] =~ "timeout"
    assert DateTime.compare(row.scheduled_at, row.attempted_at) == :gt
    assert_all_free(MyApp.JobPlugins, "fib", [10], [55])
  end

  test "a job that finds the pool full is snoozed, not failed" do
    # Hold every instance of the jobs' pool (it has no waiting room).
    Wasmbeam.Pool.checkout(MyApp.JobPlugins, fn _ ->
      Wasmbeam.Pool.checkout(MyApp.JobPlugins, fn _ ->
        job = insert!(%{"export" => "fib", "args" => [5]})
        assert_receive {:job, :stop, id, _pid, %{state: :snoozed}}, 10_000
        assert id == job.id
        row = row(job)
        assert row.state == "scheduled"
        # Snoozed for the worker's 10 s, not counted as a failure.
        assert DateTime.diff(row.scheduled_at, DateTime.utc_now()) >= 5
        assert row.errors == []
      end)
    end)
  end

  describe "a job whose process is stopped while its guest runs" do
    setup do
      forward_guest_starts()
      :ok
    end

    test "Oban's own job timeout stops the guest" do
      job =
        insert!(%{"export" => "spin", "args" => [], "timeout" => 60_000, "job_timeout" => 200})

      assert_receive {:job, :start, id, pid, _}, 10_000
      assert id == job.id
      assert_receive {:guest, "spin", ^pid}, 10_000
      monitor = Process.monitor(pid)

      assert_receive {:DOWN, ^monitor, :process, ^pid, %Oban.TimeoutError{}}, 10_000
      # Every instance is free within a second: the 60 s guest is not running.
      assert_all_free(MyApp.JobPlugins, "fib", [10], [55])
      # Oban's producer saw the death and records the failed attempt.
      assert_receive {:job, :exception, ^id, _, %{state: :failure, reason: %Oban.TimeoutError{}}},
                     10_000

      assert %{state: "retryable", attempt: 1, errors: [error]} = row(job)
      assert error["error"] =~ "TimeoutError"
    end

    test "Oban.cancel_job/1 on a running job stops its guest" do
      job = insert!(%{"export" => "spin", "args" => [], "timeout" => 60_000})
      assert_receive {:job, :start, id, pid, _}, 10_000
      assert id == job.id
      assert_receive {:guest, "spin", ^pid}, 10_000
      monitor = Process.monitor(pid)

      :ok = Oban.cancel_job(job.id)
      assert_receive {:DOWN, ^monitor, :process, ^pid, _reason}, 10_000
      assert_all_free(MyApp.JobPlugins, "fib", [10], [55])
      assert_receive {:job, :stop, ^id, _, %{state: :cancelled}}, 10_000
      assert %{state: "cancelled"} = row(job)
    end
  end

  test "a burst of jobs whose guests all trap: all cancelled, none retried, the app stays up" do
    oban = Oban.Registry.whereis(Oban)
    pool = Process.whereis(MyApp.JobPlugins)
    jobs = for n <- 1..40, do: RunPlugin.new(%{"export" => "div", "args" => [n, 0]})
    inserted = Oban.insert_all(jobs)
    ids = MapSet.new(inserted, & &1.id)

    for _ <- 1..40 do
      assert_receive {:job, :stop, id, _pid, %{state: state}}, 30_000
      assert id in ids
      assert state in [:cancelled, :snoozed]
    end

    # Snoozed ones (the pool has 2 instances, the queue runs 2 at a time, so
    # rarely) come back later; every job that ran was cancelled at attempt 1.
    states =
      Repo.all(
        from j in Oban.Job, where: j.id in ^MapSet.to_list(ids), select: {j.state, j.attempt}
      )

    assert Enum.all?(states, &(&1 in [{"cancelled", 1}, {"scheduled", 1}]))
    assert Enum.count(states, &(&1 == {"cancelled", 1})) >= 38
    assert Oban.Registry.whereis(Oban) == oban
    assert Process.whereis(MyApp.JobPlugins) == pool
    assert_all_free(MyApp.JobPlugins, "fib", [10], [55])
  end
end
