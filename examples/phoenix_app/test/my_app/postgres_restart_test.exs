defmodule MyApp.PostgresRestartTest do
  # PostgreSQL stopped and started again while jobs run: the guests finish,
  # Oban records them once the database is back, and the jobs still queued
  # run then. None is lost. Needs to control the server: bin/test-phoenix-app
  # exports WASMBEAM_PG_SH (../shared/vendor/pg.sh) and WASMBEAM_PG_DATA
  # (the data directory of the server it started); without them the test
  # is skipped, and says so.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog
  import MyApp.Test.Jobs

  alias MyApp.Repo
  alias MyApp.Workers.RunPlugin

  @pg_sh System.get_env("WASMBEAM_PG_SH")
  @pg_data System.get_env("WASMBEAM_PG_DATA")

  if is_nil(@pg_sh) or is_nil(@pg_data) do
    @moduletag skip:
                 "WASMBEAM_PG_SH and WASMBEAM_PG_DATA are not set (bin/test-phoenix-app sets them)"
  end

  # Half a second or so of guest time each: the first jobs are still
  # computing when the server goes away.
  @n 500_000_000
  @jobs 6

  setup do
    Repo.delete_all(Oban.Job)
    forward_job_events(RunPlugin)
    :ok
  end

  test "jobs running while PostgreSQL restarts all complete, none lost" do
    changesets =
      for _ <- 1..@jobs,
          do: RunPlugin.new(%{"export" => "fib", "args" => [@n], "timeout" => 60_000})

    ids = changesets |> Oban.insert_all() |> MapSet.new(& &1.id)
    assert MapSet.size(ids) == @jobs
    assert_receive {:job, :start, first, _pid, _}, 10_000
    assert first in ids

    log =
      capture_log(fn ->
        # No job has finished yet: the first is computing as the server goes.
        refute_received {:job, :stop, _, _, _}
        {_, 0} = System.cmd(@pg_sh, ["stop", @pg_data], stderr_to_stdout: true)
        assert {:error, _} = Repo.query("SELECT 1")
        {out, 0} = System.cmd(@pg_sh, ["start", @pg_data, port()], stderr_to_stdout: true)
        assert out =~ "DATABASE_URL="

        finished =
          for _ <- 1..@jobs do
            assert_receive {:job, :stop, id, _pid, %{state: :success, result: {:ok, _}}}, 120_000
            assert id in ids
            id
          end

        assert MapSet.new(finished) == ids
      end)

    # Oban and Postgrex saw the outage (and logged it) and came through.
    assert log =~ "Postgrex" or log =~ "DBConnection"

    jobs = Repo.all(Oban.Job) |> Enum.filter(&(&1.id in ids))
    assert Enum.map(jobs, &{&1.state, &1.attempt}) == List.duplicate({"completed", 1}, @jobs)
  end

  defp port do
    url = Application.fetch_env!(:my_app, Repo)[:url]
    %URI{port: port} = URI.parse(url)
    Integer.to_string(port)
  end
end
