defmodule Wasmbeam.Bench.PreviousPool do
  @moduledoc false
  # The pool as it was before its saturated path was redesigned (issue #16),
  # for rows beside the current one in bench/pool_saturation.exs. No copy is
  # kept in the tree: its source is read from git at the commit before the
  # redesign and compiled under another name, `Wasmbeam.Bench.PoolV1`.

  @revision "a8c58b2"
  @root Path.expand("../..", __DIR__)

  @doc "Compiles the previous pool as `Wasmbeam.Bench.PoolV1` (once per VM)."
  @spec load!() :: module()
  def load! do
    unless Code.ensure_loaded?(Wasmbeam.Bench.PoolV1) do
      {source, 0} =
        System.cmd("git", ["show", "#{@revision}:lib/wasmbeam/pool.ex"],
          cd: @root,
          stderr_to_stdout: true
        )

      String.starts_with?(source, "defmodule Wasmbeam.Pool do") ||
        raise "git show #{@revision}:lib/wasmbeam/pool.ex gave no Wasmbeam.Pool: #{source}"

      source
      |> String.replace("defmodule Wasmbeam.Pool do", "defmodule Wasmbeam.Bench.PoolV1 do",
        global: false
      )
      |> Code.compile_string("lib/wasmbeam/pool.ex@#{@revision}")
    end

    Wasmbeam.Bench.PoolV1
  end
end
