defmodule Wasmbeam.Bench.Harness do
  @moduledoc """
  A small benchmark harness in plain Elixir (hex.pm is out of reach, so no
  Benchee), and the bridge to the native Rust baseline
  (`bench/native_baseline`) so that every bench prints Wasmbeam's figures
  beside plain Wasmtime's, measured in the same invocation.

  Load it from a bench script with

      Code.require_file("support/harness.ex", __DIR__)

  and use it from functions of a `defmodule` in the script (a `fn` written
  at the top level of an `.exs` file is run by the evaluator, `:erl_eval`,
  which costs microseconds per call and would swamp what is measured):

      alias Wasmbeam.Bench.Harness

      results =
        Harness.compare(
          [
            {"Func.call", fn -> Wasmbeam.Func.call(add, [1, 2]) end,
             expect: {:ok, [3]}, target: "<= 1 us", target_ns: 1_000,
             floor: "native untyped_call_async"}
          ],
          native: {"call", "bench/fixtures/add.wat"}
        )

      Harness.print_table("add(i32, i32)", results)

  ## The sampling method

  Each measured function runs in a process of its own:

    1. warm-up: calls it for `warmup_ms`;
    2. calibration: doubles a batch size K, starting at 1, until the fastest
       of three batches of K calls takes at least `min_batch_ns` (unless
       `batch:` fixes K);
    3. samples: batches, each timed with `:erlang.monotonic_time(:nanosecond)`
       before and after; a sample is the batch's time divided by K.

  Sub-microsecond operations are thus timed in batches of a few microseconds
  or more, so the cost of reading the clock (tens of ns) and its granularity
  do not dominate. The report gives the median, p99 and min of the
  per-operation samples, and ops/s = all operations / all measured time (so
  it reflects the mean, outliers included). Note that p99 is the p99 of
  *batch averages*: one slow call in a batch of K shows as 1/K of its excess.
  Use `batch: 1` to see the tail of single operations (with the clock's cost
  included in every sample).

  A row with `keep_samples: true` keeps its per-operation samples in its
  result (`:per_op`), to pool runs made apart (`bench/telemetry.exs`).

  `compare/2` interleaves: it takes the samples in `rounds` rounds, and in
  each round every function (in turn) and the native baseline (a short run
  of the binary) take `samples / rounds` samples, after a short re-warm-up
  (`min(warmup_ms, 20)` ms). The machine is shared, and its speed drifts by
  tens of percent within seconds; interleaving spreads that drift over all
  rows alike, so that rows of one table can be compared. `measure/3`
  measures one function in one go.

  The native baseline uses the same method with the same parameters
  (`native_args/1` passes them on), so the two sides are comparable.

  ## Parameters

  Defaults, overridable per run with environment variables:

  | option          | default | environment           |
  |-----------------|---------|-----------------------|
  | `:samples`      | 5000    | `BENCH_SAMPLES`       |
  | `:min_batch_ns` | 10000   | `BENCH_MIN_BATCH_NS`  |
  | `:warmup_ms`    | 200     | `BENCH_WARMUP_MS`     |
  | `:rounds`       | 10      | `BENCH_ROUNDS`        |

  ## Results and tables

  A result is a map with `:name`, `:source` (`"wasmbeam"`, `"native"`,
  `"elixir"`, ...), `:median_ns`, `:p99_ns`, `:min_ns`, `:ops_per_s`,
  `:batch` (K; `"16-32"` when rounds of the native baseline chose different
  ones) and `:samples`. `print_table/2` prints rows of results, aligned, with
  optional extra keys per row:

    * `:target` - the DESIGN.md target as text, e.g. `"<= 1 us"`, and
      `:target_ns`, the number it means, to print whether the median meets it
    * `:floor` - the name of another row (usually a native one): prints how
      far this row's median is above that row's

  and `{:section, title}` entries between rows.

  ## The native baseline

  The binary is built with Cargo when it is missing or older than its
  sources or the workspace `Cargo.toml` (`BENCH_CARGO=1` forces the build,
  `BENCH_NO_CARGO=1` skips it), then run with a scenario and a WAT file. Its
  output: `#` lines are comments; `raw name K s1 s2 ...` lines (with `--raw`)
  carry every sample; every other line is
  `name median_ns p99_ns min_ns ops_per_s batch samples`. Any command that
  prints that format can be read with `run_external!/3`.
  """

  import Bitwise, only: [<<<: 2]

  @type sampling :: %{
          samples: pos_integer(),
          min_batch_ns: pos_integer(),
          warmup_ms: non_neg_integer(),
          rounds: pos_integer()
        }

  @type result :: %{
          required(:name) => String.t(),
          required(:source) => String.t(),
          required(:median_ns) => float(),
          required(:p99_ns) => float(),
          required(:min_ns) => float(),
          required(:ops_per_s) => float(),
          required(:batch) => pos_integer() | String.t(),
          required(:samples) => pos_integer(),
          optional(atom()) => term()
        }

  @type row :: {String.t(), (() -> term()), keyword()}

  @sampling_keys [:samples, :min_batch_ns, :warmup_ms, :rounds]
  @harness_keys @sampling_keys ++ [:batch, :expect, :optional, :keep_samples]
  @rewarm_ms 20

  @root Path.expand("../..", __DIR__)

  @doc "The sampling parameters: defaults, then environment, then `overrides`."
  @spec sampling(keyword()) :: sampling()
  def sampling(overrides \\ []) do
    %{
      samples: env_int("BENCH_SAMPLES", 5000),
      min_batch_ns: env_int("BENCH_MIN_BATCH_NS", 10_000),
      warmup_ms: env_int("BENCH_WARMUP_MS", 200),
      rounds: env_int("BENCH_ROUNDS", 10)
    }
    |> Map.merge(Map.new(Keyword.take(overrides, @sampling_keys)))
  end

  defp env_int(name, default) do
    case System.get_env(name) do
      nil -> default
      text -> String.to_integer(text)
    end
  end

  @doc """
  Measures `fun` (a zero-arity function) in one go and returns a result.

  Options: the sampling parameters, `:batch` to fix the batch size,
  `:source` (default `"wasmbeam"`), `:expect` to check once, before timing,
  that `fun` returns that value, and any extra keys for `print_table/2`
  (`:target`, `:target_ns`, `:floor`), which are kept in the result.
  """
  @spec measure(String.t(), (() -> term()), keyword()) :: result()
  def measure(name, fun, options \\ []) when is_function(fun, 0) do
    sampling = sampling(options)
    check!(name, fun, options)
    worker = start_worker({name, fun, options})
    worker = take_samples(worker, sampling.samples, sampling)
    send(worker.pid, :stop)
    to_result(worker)
  end

  @doc """
  Measures every row (`{name, fun, options}`, options as for `measure/3`,
  plus `optional: true` to skip a row that fails instead of raising) and,
  with `native: {scenario, wat_path}`, the native baseline, interleaved over
  `rounds` rounds (see the module doc). `native:` may also be a list of such
  pairs, each run in every round (their measurements must be named apart).
  Returns the rows' results, then the baseline's (named `"native " <> name`).
  """
  @spec compare([row()], keyword()) :: [result()]
  def compare(rows, options \\ []) do
    sampling = sampling(options)
    binary = if options[:native], do: build_native!()
    per_round = max(div(sampling.samples + sampling.rounds - 1, sampling.rounds), 1)

    workers =
      for {name, fun, row_options} = row <- rows,
          usable?(name, fun, row_options),
          do: start_worker(row)

    {workers, native} =
      Enum.reduce(1..sampling.rounds, {workers, %{}}, fn round, {workers, native} ->
        warm_ms = if round == 1, do: sampling.warmup_ms, else: min(sampling.warmup_ms, @rewarm_ms)
        round_sampling = %{sampling | warmup_ms: warm_ms, samples: per_round}

        workers =
          workers
          |> Enum.map(&take_samples_or_skip(&1, per_round, round_sampling))
          |> Enum.reject(&is_nil/1)

        native =
          options[:native]
          |> List.wrap()
          |> Enum.reduce(native, fn {scenario, wat}, native ->
            pool_native(native, binary, scenario, wat, round_sampling)
          end)

        {workers, native}
      end)

    Enum.each(workers, &send(&1.pid, :stop))
    Enum.map(workers, &to_result/1) ++ native_results(native)
  end

  defp usable?(name, fun, options) do
    check!(name, fun, options)
    true
  rescue
    e ->
      if options[:optional] do
        IO.puts(:stderr, "skipping #{name}: #{Exception.message(e)}")
        false
      else
        reraise e, __STACKTRACE__
      end
  end

  defp check!(name, fun, options) do
    case Keyword.fetch(options, :expect) do
      {:ok, expected} ->
        case fun.() do
          ^expected -> :ok
          other -> raise "#{name}: expected #{inspect(expected)}, got #{inspect(other)}"
        end

      :error ->
        :ok
    end
  end

  # A worker is a process that owns one measured function: it keeps its
  # heap and its calibrated batch size from round to round.
  defp start_worker({name, fun, options}) do
    {pid, monitor} = spawn_monitor(fn -> worker_loop(fun, options[:batch]) end)

    %{
      name: name,
      pid: pid,
      monitor: monitor,
      options: options,
      per_op: [],
      ops: 0,
      total_ns: 0,
      batch: nil
    }
  end

  defp worker_loop(fun, batch) do
    receive do
      {:sample, from, ref, count, sampling} ->
        warm_up(fun, now() + sampling.warmup_ms * 1_000_000)
        batch = batch || calibrate(fun, 1, sampling.min_batch_ns)

        {per_op, total_ns} =
          Enum.map_reduce(1..count, 0, fn _, total ->
            ns = time_batch(batch, fun)
            {ns / batch, total + ns}
          end)

        send(from, {ref, batch, per_op, total_ns})
        worker_loop(fun, batch)

      :stop ->
        :ok
    end
  end

  defp take_samples(worker, count, sampling) do
    ref = make_ref()
    send(worker.pid, {:sample, self(), ref, count, sampling})
    monitor = worker.monitor

    receive do
      {^ref, batch, per_op, total_ns} ->
        %{
          worker
          | batch: batch,
            per_op: per_op ++ worker.per_op,
            ops: worker.ops + batch * count,
            total_ns: worker.total_ns + total_ns
        }

      {:DOWN, ^monitor, :process, _, reason} ->
        raise "#{worker.name} crashed: #{inspect(reason)}"
    end
  end

  defp take_samples_or_skip(worker, count, sampling) do
    take_samples(worker, count, sampling)
  rescue
    e ->
      if worker.options[:optional] do
        IO.puts(:stderr, "skipping #{worker.name}: #{Exception.message(e)}")
        nil
      else
        reraise e, __STACKTRACE__
      end
  end

  defp to_result(worker) do
    extra = Map.new(Keyword.drop(worker.options, @harness_keys))

    %{name: worker.name, source: "wasmbeam"}
    |> Map.merge(summarize(worker.per_op, worker.ops, worker.total_ns, worker.batch))
    |> Map.merge(extra)
    |> Map.merge(if worker.options[:keep_samples], do: %{per_op: worker.per_op}, else: %{})
  end

  defp summarize(per_op, ops, total_ns, batch) do
    tuple = per_op |> Enum.sort() |> List.to_tuple()
    count = tuple_size(tuple)
    rank = fn q -> elem(tuple, min(max(ceil(q * count), 1), count) - 1) end

    %{
      median_ns: rank.(0.5),
      p99_ns: rank.(0.99),
      min_ns: elem(tuple, 0),
      ops_per_s: ops * 1.0e9 / max(total_ns, 1),
      batch: batch,
      samples: count
    }
  end

  defp now, do: :erlang.monotonic_time(:nanosecond)

  defp warm_up(fun, until) do
    if now() < until do
      run_batch(100, fun)
      warm_up(fun, until)
    end
  end

  # The best of three timings decides, so that one batch slowed down by
  # something else does not fix K too small for the whole run.
  defp calibrate(fun, batch, min_ns) do
    best = Enum.min(for _ <- 1..3, do: time_batch(batch, fun))

    if batch >= 1 <<< 24 or best >= min_ns,
      do: batch,
      else: calibrate(fun, batch * 2, min_ns)
  end

  defp time_batch(batch, fun) do
    start = now()
    run_batch(batch, fun)
    now() - start
  end

  defp run_batch(0, _fun), do: :ok

  defp run_batch(n, fun) do
    fun.()
    run_batch(n - 1, fun)
  end

  @doc "The command-line flags that give the native baseline these sampling parameters."
  @spec native_args(sampling()) :: [String.t()]
  def native_args(sampling) do
    [
      "--samples",
      Integer.to_string(sampling.samples),
      "--min-batch-ns",
      Integer.to_string(sampling.min_batch_ns),
      "--warmup-ms",
      Integer.to_string(sampling.warmup_ms)
    ]
  end

  @doc """
  Builds (when stale, see the module doc) and runs the native baseline once
  with `scenario` and `wat_path` and the sampling parameters; returns its
  results, named `"native " <> name`, with source `"native"`.
  """
  @spec native!(String.t(), Path.t(), sampling()) :: [result()]
  def native!(scenario, wat_path, sampling \\ sampling()) do
    binary = build_native!()
    run_external!(binary, [scenario, wat_path | native_args(sampling)], prefix: "native ")
  end

  # One more round of the baseline, with every sample (`--raw`), pooled
  # with the rounds before.
  defp pool_native(pooled, binary, scenario, wat, sampling) do
    arguments = [scenario, wat, "--raw" | native_args(sampling)]

    binary
    |> run_lines!(arguments)
    |> Enum.flat_map(fn line ->
      case String.split(line) do
        ["raw", name, batch | samples] -> [{name, String.to_integer(batch), samples}]
        _summary -> []
      end
    end)
    |> Enum.reduce(pooled, fn {name, batch, samples}, pooled ->
      per_op = Enum.map(samples, &number!/1)
      empty = %{order: map_size(pooled), per_op: [], ops: 0, total_ns: 0, batches: []}

      Map.update(pooled, name, add_round(empty, batch, per_op), &add_round(&1, batch, per_op))
    end)
  end

  defp add_round(acc, batch, per_op) do
    %{
      acc
      | per_op: per_op ++ acc.per_op,
        ops: acc.ops + batch * length(per_op),
        total_ns: acc.total_ns + Enum.sum(per_op) * batch,
        batches: [batch | acc.batches]
    }
  end

  defp native_results(pooled) do
    pooled
    |> Enum.sort_by(fn {_, acc} -> acc.order end)
    |> Enum.map(fn {name, acc} ->
      batch =
        case Enum.uniq(acc.batches) do
          [k] -> k
          ks -> "#{Enum.min(ks)}-#{Enum.max(ks)}"
        end

      %{name: "native " <> name, source: "native"}
      |> Map.merge(summarize(acc.per_op, acc.ops, acc.total_ns, batch))
    end)
  end

  defp build_native! do
    target_dir = System.get_env("CARGO_TARGET_DIR") || Path.join(@root, "target")
    binary = Path.join([target_dir, "release", "native_baseline"])

    cond do
      System.get_env("BENCH_NO_CARGO") in ["1", "true"] ->
        :skip

      System.get_env("BENCH_CARGO") in ["1", "true"] or stale?(binary) ->
        # Others may hold the target directory's lock (a `mix compile` or
        # `cargo test` in progress): cargo then waits for it.
        IO.puts(:stderr, "building native_baseline: cargo build --release -p native_baseline")

        {output, status} =
          System.cmd("cargo", ["build", "--release", "--quiet", "-p", "native_baseline"],
            cd: @root,
            stderr_to_stdout: true
          )

        if status != 0, do: raise("cargo build of native_baseline failed:\n#{output}")

      true ->
        :up_to_date
    end

    if File.exists?(binary),
      do: binary,
      else: raise("#{binary} is missing: run `cargo build --release -p native_baseline`")
  end

  # Running cargo when nothing changed costs nothing but may wait minutes for
  # the target directory's lock, so only build when the binary is older than
  # its sources or the workspace manifest.
  defp stale?(binary) do
    case File.stat(binary, time: :posix) do
      {:ok, %{mtime: built}} ->
        sources =
          [Path.join(@root, "Cargo.toml")] ++
            Path.wildcard(Path.join(@root, "bench/native_baseline/**/*.{rs,toml}"))

        Enum.any?(sources, fn path ->
          match?({:ok, %{mtime: changed}} when changed > built, File.stat(path, time: :posix))
        end)

      {:error, _} ->
        true
    end
  end

  @doc """
  Runs an external command that prints results in the baseline's format and
  parses its summary lines. Options: `:prefix` for the names, `:source`
  (default `"native"`).
  """
  @spec run_external!(String.t(), [String.t()], keyword()) :: [result()]
  def run_external!(command, arguments, options \\ []) do
    prefix = Keyword.get(options, :prefix, "")
    source = Keyword.get(options, :source, "native")

    command
    |> run_lines!(arguments)
    |> Enum.reject(&String.starts_with?(&1, "raw "))
    |> Enum.map(&parse_line!(&1, prefix, source))
  end

  defp run_lines!(command, arguments) do
    # stderr is left to the terminal: only stdout is parsed.
    case System.cmd(command, arguments) do
      {output, 0} ->
        output
        |> String.split("\n", trim: true)
        |> Enum.reject(&String.starts_with?(&1, "#"))

      {output, status} ->
        raise "#{command} #{Enum.join(arguments, " ")} exited with #{status}:\n#{output}"
    end
  end

  defp parse_line!(line, prefix, source) do
    case String.split(line) do
      [name, median, p99, min, ops, batch, samples] ->
        %{
          name: prefix <> name,
          source: source,
          median_ns: number!(median),
          p99_ns: number!(p99),
          min_ns: number!(min),
          ops_per_s: number!(ops),
          batch: String.to_integer(batch),
          samples: String.to_integer(samples)
        }

      _ ->
        raise "cannot parse baseline line: #{inspect(line)}"
    end
  end

  defp number!(text) do
    case Float.parse(text) do
      {n, ""} -> n
      _ -> raise "not a number in baseline output: #{inspect(text)}"
    end
  end

  @doc """
  The machine and its load: OTP and Elixir versions, schedulers, load average.
  """
  @spec machine() :: String.t()
  def machine do
    load =
      case File.read("/proc/loadavg") do
        {:ok, text} -> text |> String.split() |> Enum.take(3) |> Enum.join(" ")
        _ -> "?"
      end

    "OTP #{System.otp_release()}, Elixir #{System.version()}, " <>
      "#{System.schedulers_online()} schedulers, load average #{load}"
  end

  @doc """
  Order statistics of raw samples (any unit): median, p99, p99.9, min, max
  and the count, by nearest rank.
  """
  @spec percentiles([number()]) :: %{atom() => number()}
  def percentiles(samples) do
    sorted = samples |> Enum.sort() |> List.to_tuple()
    n = tuple_size(sorted)
    rank = fn q -> elem(sorted, min(max(ceil(q * n), 1), n) - 1) end

    %{
      median: rank.(0.5),
      p99: rank.(0.99),
      p999: rank.(0.999),
      min: elem(sorted, 0),
      max: elem(sorted, n - 1),
      n: n
    }
  end

  @doc """
  A line describing the machine and the run, to print above a table:
  OTP and Elixir versions, schedulers, load average, sampling parameters.
  """
  @spec environment(sampling()) :: String.t()
  def environment(sampling) do
    machine() <>
      "; #{sampling.samples} samples in #{sampling.rounds} interleaved rounds, " <>
      "batches >= #{sampling.min_batch_ns} ns, warm-up #{sampling.warmup_ms} ms"
  end

  @doc """
  Prints an aligned table of results (see the module doc for the row keys).
  """
  @spec print_table(String.t(), [result() | {:section, String.t()}]) :: :ok
  def print_table(title, rows) do
    by_name = for %{name: name} = row <- rows, into: %{}, do: {name, row}
    header = ["name", "median", "p99", "min", "ops/s", "K", "target", "above floor"]

    lines =
      Enum.map(rows, fn
        {:section, text} ->
          {:section, text}

        row ->
          [
            row.name,
            format_ns(row.median_ns),
            format_ns(row.p99_ns),
            format_ns(row.min_ns),
            format_rate(row.ops_per_s),
            to_string(row.batch),
            format_target(row),
            format_floor(row, by_name)
          ]
      end)

    cells = [header | for(line <- lines, is_list(line), do: line)]

    widths =
      cells
      |> Enum.zip()
      |> Enum.map(fn column -> column |> Tuple.to_list() |> Enum.map(&String.length/1) end)
      |> Enum.map(&Enum.max/1)

    rule = String.duplicate("-", Enum.sum(widths) + 2 * (length(widths) - 1))

    IO.puts("\n#{title}")
    IO.puts(rule)
    IO.puts(format_line(header, widths))
    IO.puts(rule)

    Enum.each(lines, fn
      {:section, text} -> IO.puts("-- #{text}")
      line -> IO.puts(format_line(line, widths))
    end)

    IO.puts(rule)
  end

  defp format_line([name | rest], [width | widths]) do
    numbers = Enum.zip_with(rest, widths, fn cell, w -> String.pad_leading(cell, w) end)

    [String.pad_trailing(name, width) | numbers]
    |> Enum.join("  ")
    |> String.trim_trailing()
  end

  defp format_target(%{target: target, target_ns: ns, median_ns: median}),
    do: "#{target} #{if median <= ns, do: "ok", else: "MISS"}"

  defp format_target(%{target: target}), do: target
  defp format_target(_), do: ""

  defp format_floor(%{floor: floor, median_ns: median}, by_name) do
    case Map.fetch(by_name, floor) do
      {:ok, base} ->
        ratio = :erlang.float_to_binary(median / base.median_ns, decimals: 1)
        "+#{format_ns(median - base.median_ns)} (#{ratio}x #{floor})"

      :error ->
        "(no row #{floor})"
    end
  end

  defp format_floor(_, _), do: ""

  @doc """
  Prints `rows` as a table: `{:section, text}` lines, and rows of `:name`,
  `:median`, `:p99`, `:min` (rendered by `format`) and `:n` (the runs).
  """
  @spec print_rows([map() | {:section, String.t()}], (number() -> String.t())) :: :ok
  def print_rows(rows, format) do
    label = fn
      {:section, text} -> "-- " <> text
      row -> row.name
    end

    width = rows |> Enum.map(&String.length(label.(&1))) |> Enum.max()
    header = Enum.map_join(["median", "p99", "min"], &String.pad_leading(&1, 11))
    IO.puts(String.pad_trailing("", width) <> header <> "   runs")

    Enum.each(rows, fn
      {:section, text} ->
        IO.puts("-- " <> text)

      row ->
        IO.puts(
          String.pad_trailing(row.name, width) <>
            Enum.map_join([row.median, row.p99, row.min], &String.pad_leading(format.(&1), 11)) <>
            String.pad_leading(to_string(row.n), 7)
        )
    end)
  end

  @doc "Formats nanoseconds with a unit that keeps three significant digits."
  @spec format_ns(number()) :: String.t()
  def format_ns(ns) when ns < 0, do: "-" <> format_ns(-ns)
  def format_ns(ns) when ns < 99.95, do: "#{:erlang.float_to_binary(ns * 1.0, decimals: 1)} ns"
  def format_ns(ns) when ns < 999.5, do: "#{round(ns)} ns"

  def format_ns(ns) when ns < 999_995,
    do: "#{:erlang.float_to_binary(ns / 1_000, decimals: 2)} us"

  def format_ns(ns), do: "#{:erlang.float_to_binary(ns / 1_000_000, decimals: 2)} ms"

  defp format_rate(ops) when ops >= 1_000_000,
    do: "#{:erlang.float_to_binary(ops / 1_000_000, decimals: 2)} M"

  defp format_rate(ops) when ops >= 1_000,
    do: "#{:erlang.float_to_binary(ops / 1_000, decimals: 1)} k"

  defp format_rate(ops), do: "#{round(ops)}"
end
