defmodule Wasmbeam.WasiTestsuiteTest do
  # The official WASI test suite, preview 1 (WebAssembly/wasi-testsuite,
  # compiled tests; see ../shared/wasi-testsuite/README.md): every test is
  # run through `mix wasmbeam.run` the way the suite's own runner runs it
  # with the Wasmtime CLI, and must pass.
  #
  # The task is called in this VM, like test/mix/wasmbeam_run_test.exs does,
  # with a group leader of its own (Stdio below) as its stdout and stdin.
  # Its stderr is the VM-wide standard_error, captured: not async.
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO

  alias Mix.Tasks.Wasmbeam.Run

  defmodule Stdio do
    @moduledoc false
    # A group leader (an Erlang I/O server) for one run: it keeps what is
    # written to it, and is an open, empty stdin, like the suite runner's
    # pipe: a read waits, until close/1 stops it; the reader then sees the
    # server gone, as end of input.

    def start_link, do: spawn_link(fn -> loop([]) end)

    @doc "Stops the server; returns everything written to it."
    def close(io) do
      ref = Process.monitor(io)
      send(io, {:close, self(), ref})

      receive do
        {^ref, output} ->
          Process.demonitor(ref, [:flush])
          output

        {:DOWN, ^ref, :process, _, reason} ->
          exit({:stdio_down, reason})
      end
    end

    defp loop(output) do
      receive do
        {:io_request, from, reply_as, request} ->
          case request(request, output) do
            {:reply, reply, output} ->
              send(from, {:io_reply, reply_as, reply})
              loop(output)

            # A read: never answered while the run lasts.
            {:wait, output} ->
              loop(output)
          end

        {:close, from, ref} ->
          send(from, {ref, output |> Enum.reverse() |> IO.iodata_to_binary()})
      end
    end

    defp request({:put_chars, encoding, chars}, output) do
      case chars(encoding, chars) do
        {:ok, binary} -> {:reply, :ok, [binary | output]}
        :error -> {:reply, {:error, :put_chars}, output}
      end
    end

    defp request({:put_chars, encoding, module, fun, args}, output) do
      request({:put_chars, encoding, apply(module, fun, args)}, output)
    end

    defp request({:requests, requests}, output) do
      Enum.reduce_while(requests, {:reply, :ok, output}, fn request, {:reply, _, output} ->
        case request(request, output) do
          {:reply, _, _} = done -> {:cont, done}
          {:wait, _} = wait -> {:halt, wait}
        end
      end)
    end

    defp request(request, output)
         when elem(request, 0) in [:get_chars, :get_line, :get_until, :get_password],
         do: {:wait, output}

    defp request(:getopts, output), do: {:reply, [binary: true, encoding: :unicode], output}
    defp request({:setopts, _}, output), do: {:reply, :ok, output}
    defp request(_other, output), do: {:reply, {:error, :request}, output}

    # Bytes as written: latin1 chars are bytes, unicode chars are encoded
    # as UTF-8.
    defp chars(:latin1, chars) do
      {:ok, IO.iodata_to_binary(chars)}
    rescue
      ArgumentError -> :error
    end

    defp chars(:unicode, chars) do
      case :unicode.characters_to_binary(chars) do
        binary when is_binary(binary) -> {:ok, binary}
        _ -> :error
      end
    end
  end

  defmodule Json do
    @moduledoc false
    # Enough JSON for the suite's test files (no JSON library here, and
    # OTP 25 has none): objects decode to lists of {key, value}, in their
    # order, which is the order the runner passes env variables in.

    def decode!(text) do
      case value(skip(text)) do
        {value, rest} ->
          if skip(rest) == "", do: value, else: raise(ArgumentError, "trailing JSON: #{rest}")
      end
    end

    defp skip(<<c, rest::binary>>) when c in ~c" \t\r\n", do: skip(rest)
    defp skip(text), do: text

    defp value("{" <> rest), do: object(skip(rest), [])
    defp value("[" <> rest), do: array(skip(rest), [])
    defp value("\"" <> rest), do: string(rest, [])
    defp value("true" <> rest), do: {true, rest}
    defp value("false" <> rest), do: {false, rest}
    defp value("null" <> rest), do: {nil, rest}

    defp value(text) do
      case Regex.run(~r/^-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?/, text) do
        [number | parts] ->
          rest = binary_part(text, byte_size(number), byte_size(text) - byte_size(number))

          if Enum.any?(tl(parts), &(&1 != "")),
            do: {elem(Float.parse(number), 0), rest},
            else: {String.to_integer(number), rest}

        nil ->
          raise ArgumentError, "invalid JSON at: #{String.slice(text, 0, 20)}"
      end
    end

    defp object("}" <> rest, acc), do: {Enum.reverse(acc), rest}

    defp object(text, acc) do
      {key, rest} =
        case text do
          "\"" <> rest -> string(rest, [])
          _ -> raise ArgumentError, "invalid JSON object key at: #{String.slice(text, 0, 20)}"
        end

      ":" <> rest = skip(rest)
      {value, rest} = value(skip(rest))

      case skip(rest) do
        "," <> rest -> object(skip(rest), [{key, value} | acc])
        "}" <> rest -> {Enum.reverse([{key, value} | acc]), rest}
      end
    end

    defp array("]" <> rest, acc), do: {Enum.reverse(acc), rest}

    defp array(text, acc) do
      {value, rest} = value(text)

      case skip(rest) do
        "," <> rest -> array(skip(rest), [value | acc])
        "]" <> rest -> {Enum.reverse([value | acc]), rest}
      end
    end

    defp string("\"" <> rest, acc), do: {acc |> Enum.reverse() |> IO.iodata_to_binary(), rest}

    defp string("\\u" <> <<hex::binary-4, rest::binary>>, acc) do
      case {String.to_integer(hex, 16), rest} do
        {high, "\\u" <> <<low::binary-4, rest::binary>>} when high in 0xD800..0xDBFF ->
          low = String.to_integer(low, 16)
          string(rest, [<<0x10000 + (high - 0xD800) * 0x400 + (low - 0xDC00)::utf8>> | acc])

        {code, rest} ->
          string(rest, [<<code::utf8>> | acc])
      end
    end

    defp string("\\" <> <<c, rest::binary>>, acc) do
      escaped =
        case c do
          ?" -> "\""
          ?\\ -> "\\"
          ?/ -> "/"
          ?b -> "\b"
          ?f -> "\f"
          ?n -> "\n"
          ?r -> "\r"
          ?t -> "\t"
        end

      string(rest, [escaped | acc])
    end

    defp string(<<c, rest::binary>>, acc), do: string(rest, [c | acc])
  end

  @moduletag :wasi_testsuite

  @tarball Path.expand(
             "../../shared/wasi-testsuite/wasi-testsuite-p1-9f80ca35.tar.xz",
             __DIR__
           )

  # The counts its README gives: the suite is run whole, nothing skipped.
  @expected_counts %{"assemblyscript" => 12, "c" => 14, "rust" => 46}

  # How long one test may run (compiling it is not counted). The suite's
  # runner gives a whole test, Wasmtime's compile included, 5 s.
  @run_timeout_ms 30_000

  # The suite's tests, {language, name}, listed from the tarball when this
  # file is compiled: one ExUnit test each. Without the tarball, or a tar
  # that can read it, there are none, and the listing test fails, saying why.
  {tests, listing_error} =
    cond do
      not File.regular?(@tarball) ->
        {[], "#{@tarball} not found"}

      System.find_executable("tar") == nil ->
        {[], "tar not found"}

      true ->
        case System.cmd("tar", ["tJf", @tarball], stderr_to_stdout: true) do
          {listing, 0} ->
            tests =
              for line <- String.split(listing, "\n"),
                  [_, lang, name] <-
                    [Regex.run(~r{^tests/([^/]+)/testsuite/wasm32-wasip1/([^/]+)\.wasm$}, line)],
                  do: {lang, name}

            {Enum.sort(tests), nil}

          {output, status} ->
            {[],
             "tar tJf #{@tarball} failed (#{status}); is xz installed? " <>
               "(bin/setup installs xz-utils)\n#{output}"}
        end
    end

  @tests tests
  @listing_error listing_error

  setup_all do
    unless File.regular?(@tarball) do
      flunk("""
      the WASI test suite is missing: #{@tarball} not found.
      It lives in ../shared/wasi-testsuite/ beside the repository (see its README.md).
      """)
    end

    # The task's progress lines are its own, not the program's: a compile
    # that a busy machine slows past the task's second would add one to the
    # stderr compared here. (Not async: no other test sees the variable.)
    System.put_env("WASMBEAM_PROGRESS_AFTER_MS", "3600000")
    on_exit(fn -> System.delete_env("WASMBEAM_PROGRESS_AFTER_MS") end)

    tmp = Wasmbeam.Test.Tmp.path("wasmbeam-wasi-testsuite")

    File.mkdir_p!(tmp)
    on_exit(fn -> File.rm_rf!(tmp) end)

    case System.cmd("tar", ["xJf", @tarball, "-C", tmp], stderr_to_stdout: true) do
      {_, 0} ->
        :ok

      {output, status} ->
        flunk(
          "unpacking #{@tarball} failed (#{status}); is xz installed? " <>
            "(bin/setup installs xz-utils)\n#{output}"
        )
    end

    {:ok, suite: tmp}
  end

  test "the tarball holds the suite's 72 tests: 12 AssemblyScript, 14 C, 46 Rust", ctx do
    if @listing_error, do: flunk("cannot list the WASI test suite: #{@listing_error}")

    counts = @tests |> Enum.frequencies_by(&elem(&1, 0))
    assert counts == @expected_counts

    # The tests that were generated are the ones that were unpacked.
    unpacked =
      for path <- Path.wildcard(Path.join(ctx.suite, "tests/*/testsuite/wasm32-wasip1/*.wasm")) do
        [lang, "testsuite", "wasm32-wasip1", file] =
          path |> Path.relative_to(Path.join(ctx.suite, "tests")) |> Path.split()

        {lang, Path.rootname(file)}
      end

    assert Enum.sort(unpacked) == @tests
  end

  for {lang, name} <- @tests do
    @tag timeout: 3 * @run_timeout_ms
    test "#{lang}/#{name}", ctx do
      run_suite_test(ctx.suite, unquote(lang), unquote(name))
    end
  end

  # Runs one test of the suite as its runner does (test-runner/
  # wasi_test_runner and adapters/wasmtime.py in the tarball): NAME.wasm
  # with NAME.json's args (after `--`), env (`--env`, in the json's order)
  # and `root` (`--dir COPY::/`, as the Wasmtime adapter maps it; the only
  # folder key these tests use), or `dirs` as the shared README describes
  # them (`--dir COPY::NAME` each); it asserts the exit code and, when the
  # json gives them, stdout and stderr: exactly (the runner reads as many
  # characters as it expects, so it would let more output pass).
  # (Public: without the tarball no test calls it, and it must not be
  # warned about then.)
  @doc false
  def run_suite_test(suite, lang, name) do
    dir = Path.join([suite, "tests", lang, "testsuite", "wasm32-wasip1"])
    wasm = Path.join(dir, name <> ".wasm")
    config = config(Path.join(dir, name <> ".json"))

    # Each run gets fresh copies of its folders: tests create and delete
    # files in them.
    work = Path.join([suite, "runs", lang, name])
    File.rm_rf!(work)
    File.mkdir_p!(work)

    root_flags =
      case get(config, "root") do
        nil -> []
        root -> ["--dir", copy!(Path.join(dir, root), Path.join(work, "root")) <> "::/"]
      end

    dir_flags =
      for folder <- get(config, "dirs", []) do
        ["--dir", copy!(Path.join(dir, folder), Path.join(work, folder)) <> "::" <> folder]
      end

    env_flags = for {var, value} <- get(config, "env", []), do: ["--env", "#{var}=#{value}"]

    argv =
      List.flatten([
        ["--timeout", to_string(@run_timeout_ms)],
        env_flags,
        root_flags,
        dir_flags,
        [wasm, "--" | get(config, "args", [])]
      ])

    {status, stdout, stderr} = run(argv)

    report = """
    mix wasmbeam.run #{Enum.map_join(argv, " ", &inspect/1)}
    exit status: #{inspect(status)}
    stdout: #{inspect(stdout, limit: :infinity, printable_limit: 4096)}
    stderr: #{inspect(stderr, limit: :infinity, printable_limit: 4096)}
    """

    expected_code = get(config, "exit_code", 0)

    assert status == expected_code,
           "#{lang}/#{name}: expected exit status #{expected_code}\n" <> report

    for {stream, actual} <- [{"stdout", stdout}, {"stderr", stderr}],
        expected = get(config, stream),
        expected != nil do
      assert actual == expected,
             "#{lang}/#{name}: expected #{stream} #{inspect(expected)}\n" <> report
    end
  end

  # NAME.json, as a list of {key, value}; no json is no args, no env, no
  # dirs, exit code 0. A key this runner does not know fails the test,
  # rather than the test being run without what it asks for.
  @config_keys ~w(args env dirs root exit_code stdout stderr)

  defp config(path) do
    case File.read(path) do
      {:ok, text} ->
        config = Json.decode!(text)

        case Enum.reject(config, fn {key, _} -> key in @config_keys end) do
          [] -> config
          unknown -> flunk("#{path}: keys this runner does not handle: #{inspect(unknown)}")
        end

      {:error, :enoent} ->
        []
    end
  end

  defp get(config, key, default \\ nil) do
    case List.keyfind(config, key, 0) do
      {^key, value} -> value
      nil -> default
    end
  end

  defp copy!(source, target) do
    File.cp_r!(source, target)
    target
  end

  # Runs the task with Stdio as its group leader (its stdout and stdin;
  # the processes it starts inherit it); returns {exit status, stdout,
  # stderr}, the status as `mix` would exit with it.
  defp run(argv) do
    parent = self()

    stderr =
      capture_io(:stderr, fn ->
        io = Stdio.start_link()

        task =
          Task.async(fn ->
            Process.group_leader(self(), io)

            try do
              Run.run(argv)
              0
            catch
              :exit, {:shutdown, code} when is_integer(code) -> code
              kind, reason -> {kind, Exception.format(kind, reason, __STACKTRACE__)}
            end
          end)

        status = Task.await(task, 2 * @run_timeout_ms)
        send(parent, {:run, status, Stdio.close(io)})
      end)

    assert_received {:run, status, stdout}
    {status, stdout, stderr}
  end
end
