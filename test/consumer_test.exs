defmodule Wasmbeam.ConsumerTest do
  # Wasmbeam must work as a dependency: a second Mix project lists
  # {:wasmbeam, path: ...}, compiles it (NIF included), loads it and calls.
  use ExUnit.Case, async: true

  @moduletag :consumer
  @moduletag timeout: 600_000

  @consumer Path.expand("consumer", __DIR__)

  test "a project that depends on wasmbeam builds it, loads the NIF and calls a function" do
    env = [{"MIX_ENV", "dev"}]

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
end
