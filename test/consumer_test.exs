defmodule Wasmbeam.ConsumerTest do
  # Wasmbeam must work as a dependency: a second Mix project lists
  # {:wasmbeam, path: ...}, compiles it (NIF included), loads it and calls.
  use ExUnit.Case, async: true

  @moduletag :consumer
  @moduletag timeout: 600_000

  @consumer Path.expand("consumer", __DIR__)

  test "a project that depends on wasmbeam builds it, loads the NIF and calls a function" do
    env = [{"MIX_ENV", "dev"}, {"DATABASE_URL", "ecto://localhost/consumer"}]

    {output, status} =
      System.cmd("mix", ["run", "-e", "Consumer.check()"],
        cd: @consumer,
        env: env,
        stderr_to_stdout: true
      )

    assert status == 0, output
    assert output =~ "consumer result: 42"
    assert output =~ "consumer telemetry: false"
  end

  # A Phoenix app's config/runtime.exs needs DATABASE_URL and its
  # application a database; neither is there on a build machine. The
  # consumer stands for one (config/runtime.exs, Consumer.Application).
  test "mix wasmbeam.precompile and mix wasmbeam.run do not start the project's application" do
    tmp = Wasmbeam.Test.Tmp.path("wasmbeam-consumer")
    on_exit(fn -> File.rm_rf(tmp) end)
    # The module cache of mix wasmbeam.run writes under the user's cache directory.
    env = [{"MIX_ENV", "dev"}, {"DATABASE_URL", nil}, {"XDG_CACHE_HOME", Path.join(tmp, "cache")}]
    mix = &System.cmd("mix", &1, cd: @consumer, env: env, stderr_to_stdout: true)

    {output, status} = mix.(["run", "-e", "Consumer.check()"])
    assert status != 0, output
    assert output =~ "DATABASE_URL is missing"

    out = Path.join(tmp, "wasm_cache")
    {output, status} = mix.(["wasmbeam.precompile", "--out", out])
    assert status == 0, output
    assert output =~ "priv/wasm/answer.wat ->"
    assert [_artifact] = Path.wildcard(Path.join(out, "*.cwasm"))

    {output, status} = mix.(["wasmbeam.run", "--invoke", "answer", "priv/wasm/answer.wat"])
    assert status == 0, output
    assert output =~ ~r/^42$/m
  end
end
