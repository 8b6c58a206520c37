defmodule Wasmbeam.MutationTest do
  # Mutation test over the spec suite's modules (issue #15): mutants of
  # the modules in _build/spec_suite/ (see test/spec/spec_suite_test.exs)
  # go through validate, compile, instantiate (stub imports, tight store
  # limits) and a call of every exported function. No mutant may crash the VM, make an
  # API function raise or answer anything but `{:ok, _}` or
  # `{:error, %Wasmbeam.Error{}}` (nor a `:panic` or `:poisoned` error,
  # which mean a bug in the native code), or make a call outlive its
  # timeout. Afterwards the application must still run, a fresh module must
  # compile and run, and the VM must not have gained OS threads.
  # The operators and the checks are in test/support/mutation.ex.
  #
  # Environment variables:
  #
  #   * WASMBEAM_MUTANTS - how many mutants (default 10000, about 4 s on
  #     2 cores); e.g. 200000 for a long run
  #   * WASMBEAM_MUTATION_SEED - the seed (an integer, default 15). Mutant
  #     `i` comes from `:rand.seed(:exsss, {seed, i, 0})` alone, so a
  #     failure (which prints the seed and the index) is reproducible
  #   * WASMBEAM_MUTATION_INDEX - run only the mutant of that index, to
  #     reproduce a failure
  #   * WASMBEAM_MUTATION_VERBOSE - print the outcomes by stage and kind
  #
  # A failing mutant's bytes are written to
  # _build/mutation/failed-SEED-INDEX.wasm. Each mutant is written to
  # _build/mutation/in-flight.wasm (and its seed and index to
  # in-flight.txt) before it runs, and both are deleted after the run: if
  # they are there, that mutant crashed or hung the VM.
  #
  # Run alone with `mix test test/wasmbeam/mutation_test.exs`; leave out
  # with `--exclude mutation`.
  use ExUnit.Case, async: false

  alias Wasmbeam.{Engine, Instance, Module}
  alias Wasmbeam.Test.{Mutation, SpecRunner}

  @moduletag :mutation

  @mutants (case System.get_env("WASMBEAM_MUTANTS") do
              nil -> 10_000
              n -> String.to_integer(n)
            end)

  # The Wasm 3.0 suite and the proposals it does not have.
  @dirs [
    "wasm-latest",
    "proposals/wide-arithmetic",
    "proposals/custom-page-sizes",
    "proposals/relaxed-simd"
  ]

  @limits [memory_size: 16 * 1024 * 1024, table_elements: 10_000]
  @timeout 50
  @fuel 1_000_000
  # A call or instantiation under a 50 ms timeout that takes longer than
  # this is a hang.
  @slow_ms 5_000

  @simple ~S[(module (func (export "add") (param i32 i32) (result i32)
                local.get 0 local.get 1 i32.add))]

  @tag timeout: 120_000 + @mutants * 200
  test "no mutant of a spec module crashes the VM, raises or hangs a call" do
    seed = env_integer("WASMBEAM_MUTATION_SEED", 15)
    indices = indices()

    root = File.cwd!()
    out_dir = Path.join(root, "_build/spec_suite")
    SpecRunner.ensure_converted!(root, out_dir)
    corpus = Mutation.corpus(out_dir, @dirs)

    dir = Path.join(root, "_build/mutation")
    File.mkdir_p!(dir)
    in_flight = Path.join(dir, "in-flight.wasm")
    in_flight_txt = Path.join(dir, "in-flight.txt")
    # Raw files, rewritten in place: File.write/2 per mutant would cost
    # more than most mutants do.
    {:ok, in_flight_fd} = :file.open(in_flight, [:raw, :write, :binary])
    {:ok, in_flight_txt_fd} = :file.open(in_flight_txt, [:raw, :write, :binary])

    # The default engine (epoch interruption), and one that meters fuel
    # with every proposal Wasmtime runs on (threads stays off, as
    # Wasmbeam runs a store on one process at a time).
    features =
      Keyword.merge(Engine.Config.default_features(),
        wide_arithmetic: true,
        custom_page_sizes: true
      )

    engines = %{
      default: {Engine.default(), call: [timeout: @timeout]},
      fuel:
        {Engine.new!(consume_fuel: true, features: features),
         call: [timeout: @timeout, fuel: @fuel]}
    }

    # Both engines compile, instantiate and call once before the threads
    # are counted: their threads (compilation pool, epoch ticker) exist by
    # then.
    for {_, {engine, _}} <- engines, do: assert_simple_runs(engine)
    threads_before = os_threads()
    started = System.monotonic_time(:millisecond)

    opts = [limits: @limits, max_calls: 64, calls_budget_ms: 500, slow_ms: @slow_ms]

    # Only the tallies are kept from one mutant to the next (and the bytes
    # of a failing one): a run of 10^5 mutants keeps a small heap.
    tally =
      Enum.reduce(indices, new_tally(), fn i, tally ->
        :rand.seed(:exsss, {seed, i, 0})
        kind = if :rand.uniform(4) == 1, do: :fuel, else: :default
        {engine, call: call} = engines[kind]
        mutant = Mutation.mutant(corpus)

        rewrite(in_flight_fd, mutant.bytes)
        rewrite(in_flight_txt_fd, "WASMBEAM_MUTATION_SEED=#{seed} WASMBEAM_MUTATION_INDEX=#{i}\n")

        result = Mutation.run(mutant.bytes, engine, [call: call] ++ opts)
        # Native resources (stores, modules) go with the terms that hold them.
        if rem(i, 200) == 199, do: :erlang.garbage_collect()

        tally
        |> add_to_tally(kind, mutant, result)
        |> add_failure(result.bugs, seed, i, kind, mutant, dir)
      end)

    elapsed = System.monotonic_time(:millisecond) - started
    :ok = :file.close(in_flight_fd)
    :ok = :file.close(in_flight_txt_fd)
    File.rm(in_flight)
    File.rm(in_flight_txt)

    report(tally, seed, elapsed)
    failures = Enum.reverse(tally.failures)

    assert failures == [],
           "#{length(failures)} mutant(s) broke the rules (seed #{seed}; reproduce one with " <>
             "WASMBEAM_MUTATION_SEED=#{seed} WASMBEAM_MUTATION_INDEX=<index> " <>
             "mix test test/wasmbeam/mutation_test.exs):\n" <>
             Enum.join(Enum.take(failures, 20), "\n")

    # The VM is fine: the application runs, a fresh module compiles and
    # runs on both engines, and no threads were left behind.
    assert Application.started_applications() |> List.keymember?(:wasmbeam, 0)
    assert is_pid(Process.whereis(Wasmbeam.Supervisor))
    for {_, {engine, _}} <- engines, do: assert_simple_runs(engine)

    if threads_before do
      threads_after = os_threads()

      assert threads_after <= threads_before + 32,
             "OS threads grew from #{threads_before} to #{threads_after} (seed #{seed})"
    end
  end

  defp assert_simple_runs(engine) do
    assert {:ok, module} = Module.compile(engine, @simple)
    assert {:ok, instance} = Instance.new(module, %{}, @limits)
    assert {:ok, [3]} = Instance.call(instance, "add", [1, 2], timeout: 1_000)
  end

  defp rewrite(fd, bytes) do
    {:ok, 0} = :file.position(fd, 0)
    :ok = :file.write(fd, bytes)
    :ok = :file.truncate(fd)
  end

  defp os_threads do
    case File.ls("/proc/self/task") do
      {:ok, tasks} -> length(tasks)
      {:error, _} -> nil
    end
  end

  defp indices do
    case System.get_env("WASMBEAM_MUTATION_INDEX") do
      nil -> if @mutants > 0, do: 0..(@mutants - 1)//1, else: []
      _ -> [env_integer("WASMBEAM_MUTATION_INDEX", 0)]
    end
  end

  defp env_integer(name, default) do
    case System.get_env(name) do
      nil ->
        default

      text ->
        case Integer.parse(String.trim(text)) do
          {n, ""} -> n
          _ -> flunk("#{name} must be an integer, got: #{inspect(text)}")
        end
    end
  end

  ## Tallies and report

  defp new_tally,
    do: %{mutants: 0, counts: %{}, ops: %{}, engines: %{}, slowest: 0, failures: []}

  defp add_to_tally(tally, kind, mutant, result) do
    %{
      tally
      | mutants: tally.mutants + 1,
        counts:
          Enum.reduce(result.outcomes, tally.counts, fn {stage, outcome}, counts ->
            increment(counts, {stage, outcome_key(outcome)})
          end),
        ops: Enum.reduce(mutant.ops, tally.ops, &increment(&2, &1)),
        engines: increment(tally.engines, kind),
        slowest: max(tally.slowest, result.slowest)
    }
  end

  defp increment(map, key), do: Map.update(map, key, 1, &(&1 + 1))

  defp add_failure(tally, [], _seed, _i, _kind, _mutant, _dir), do: tally

  defp add_failure(tally, bugs, seed, i, kind, mutant, dir) do
    path = Path.join(dir, "failed-#{seed}-#{i}.wasm")
    File.write!(path, mutant.bytes)

    failure =
      "mutant #{i} (#{kind} engine, from #{inspect(mutant.from)}, " <>
        "ops #{inspect(mutant.ops)}; bytes in #{path}):\n  " <> Enum.join(bugs, "\n  ")

    %{tally | failures: [failure | tally.failures]}
  end

  defp report(tally, seed, elapsed) do
    counts = tally.counts

    stage_total = fn stage ->
      for {{^stage, _}, n} <- counts, reduce: 0, do: (acc -> acc + n)
    end

    calls = stage_total.(:call) - Map.get(counts, {:call, :skipped}, 0)
    calls = calls - Map.get(counts, {:call, :over_budget}, 0)

    call_outcomes =
      for {{:call, outcome}, n} <- Enum.sort_by(counts, &(-elem(&1, 1))),
          outcome not in [:skipped, :over_budget],
          do: "#{format_outcome(outcome)} #{n}"

    IO.puts(
      "\nMutation test: #{tally.mutants} mutants (seed #{seed}) in #{elapsed} ms: " <>
        "#{Map.get(counts, {:compile, :ok}, 0)} compiled, " <>
        "#{Map.get(counts, {:instantiate, :ok}, 0)} instantiated, #{calls} calls " <>
        "(#{Enum.join(Enum.take(call_outcomes, 6), ", ")}); " <>
        "slowest call or instantiation #{tally.slowest} ms"
    )

    if System.get_env("WASMBEAM_MUTATION_VERBOSE") do
      rows =
        for {{stage, outcome}, n} <- Enum.sort(counts) do
          String.pad_trailing(to_string(stage), 14) <>
            String.pad_trailing(format_outcome(outcome), 36) <> String.pad_leading("#{n}", 8)
        end

      ops = tally.ops |> Enum.sort() |> Enum.map_join(", ", fn {op, n} -> "#{op} #{n}" end)

      IO.puts("""
      #{Enum.join(rows, "\n")}
      operators: #{ops}
      engines: #{inspect(tally.engines)}
      """)
    end
  end

  # Skipped calls count the functions left out, not the mutants.
  defp outcome_key({:skipped, _n}), do: :skipped
  defp outcome_key(outcome), do: outcome

  defp format_outcome({:trap, trap}), do: "trap #{trap}"
  defp format_outcome(kind), do: to_string(kind)
end
