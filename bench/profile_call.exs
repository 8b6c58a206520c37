# A loop of `Wasmbeam.Func.call(add, [1, 2])` (or another operation) to profile with `perf`; it
# measures nothing itself.
#
#     ERL_FLAGS="+JPperf true" perf record -F 2000 -g -o /tmp/wasmbeam.perf -- \
#       mix run bench/profile_call.exs
#     perf report -i /tmp/wasmbeam.perf --no-children --sort dso,symbol
#
# `+JPperf true` makes the BEAM's JIT write /tmp/perf-<pid>.map so that
# Erlang functions have names in the report. Environment:
# PROFILE_SECONDS (default 10), PROFILE_CALL (what to loop, as in
# bench/call.exs: func, the default; instance; timeout; instantiate;
# host_call, a call whose guest calls an Elixir identity function).

defmodule Wasmbeam.Bench.ProfileCall do
  alias Wasmbeam.{Func, Instance, Module}

  def run do
    seconds = String.to_integer(System.get_env("PROFILE_SECONDS", "10"))
    module = Module.compile!(File.read!(Path.expand("fixtures/add.wat", __DIR__)))
    instance = Instance.new!(module)
    {:ok, add} = Instance.func(instance, "add")

    call =
      case System.get_env("PROFILE_CALL", "func") do
        "func" -> fn -> Func.call(add, [1, 2]) end
        "instance" -> fn -> Instance.call(instance, "add", [1, 2]) end
        "timeout" -> fn -> Instance.call(instance, "add", [1, 2], timeout: 1000) end
        "instantiate" -> fn -> Instance.new(module) end
        "host_call" -> host_call()
      end

    {:ok, _} = call.()
    until = :erlang.monotonic_time(:millisecond) + seconds * 1000
    calls = loop(call, until, 0)

    IO.puts(
      "#{calls} operations in #{seconds} s: #{Float.round(seconds * 1.0e9 / calls, 1)} ns each"
    )
  end

  # A call to an export that calls an Elixir identity function once.
  defp host_call do
    wat = ~S[(module (import "env" "id" (func $id (param i32) (result i32)))
      (func (export "via_id") (param i32) (result i32) local.get 0 call $id))]

    imports = %{"env" => %{"id" => {:fn, [:i32], [:i32], fn _caller, x -> x end}}}
    {:ok, instance} = Wasmbeam.load(wat, imports)
    {:ok, via_id} = Instance.func(instance, "via_id")
    fn -> Func.call(via_id, [7]) end
  end

  defp loop(call, until, n) do
    if :erlang.monotonic_time(:millisecond) < until do
      batch(call, 1000)
      loop(call, until, n + 1000)
    else
      n
    end
  end

  defp batch(_call, 0), do: :ok

  defp batch(call, n) do
    {:ok, _} = call.()
    batch(call, n - 1)
  end
end

Wasmbeam.Bench.ProfileCall.run()
