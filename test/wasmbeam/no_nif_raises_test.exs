defmodule Wasmbeam.NoNifRaisesTest do
  # Regression (native review 2026-12, E1; issue item 7): no NIF lets a
  # panic escape as an exception. `Instance.new` with an imported memory
  # over 65,536 pages used to raise `%ErlangError{original: :nif_panicked}`
  # (Wasmtime's `MemoryType::new` panics, and `instance_new` had no guard).
  # Then every NIF of `Wasmbeam.Native` is called with hostile arguments:
  # a `:badarg` for a wrongly typed argument is acceptable, a panic is not.
  use ExUnit.Case, async: true

  alias Wasmbeam.{Error, Instance, Module}
  alias Wasmbeam.Test.HostileNifArgs

  test "Instance.new with an imported memory of 70,000 pages is an error, not a raise" do
    module = Module.compile!(~S[(module (import "env" "m" (memory 1)))])

    result =
      try do
        Instance.new(module, %{"env" => %{"m" => {:memory, 70_000}}})
      rescue
        exception -> {:raised, exception}
      end

    assert match?({:error, %Error{}}, result),
           "Instance.new should return {:error, %Wasmbeam.Error{}}, got: #{inspect(result)}"
  end

  @tag :tmp_dir
  test "no NIF panics on hostile arguments", %{tmp_dir: dir} do
    fx = HostileNifArgs.fixtures(Path.join(dir, "cache"))
    File.mkdir_p!(fx.dir)

    nifs = Wasmbeam.Native.__info__(:functions) -- [load: 0]
    calls = HostileNifArgs.calls(fx, nifs)

    # Every NIF was called, with more than its plausible arguments.
    assert calls |> Enum.map(&elem(&1, 0)) |> Enum.uniq() |> length() == length(nifs)

    panics =
      for call <- calls,
          HostileNifArgs.run(call, fx) == {:raised, :error, :nif_panicked},
          do: call

    assert panics == [], "#{length(panics)} call(s) panicked:\n" <> describe(panics)
  end

  @tag :tmp_dir
  test "no caller operation or host-call NIF panics on hostile arguments", %{tmp_dir: dir} do
    fx = HostileNifArgs.fixtures(dir)

    panics =
      for {call, {:raised, :error, :nif_panicked}} <- HostileNifArgs.run_inside_host_call(fx),
          do: call

    assert panics == [], "#{length(panics)} call(s) panicked:\n" <> describe(panics)

    answers =
      for {results, {:raised, :error, :nif_panicked}} <-
            HostileNifArgs.answer_with_hostile_results(fx),
          do: {:store_answer, [results]}

    assert answers == [], "answering with these results panicked:\n" <> describe(answers)
  end

  defp describe_arg(arg) do
    if arg == HostileNifArgs.fresh_store(),
      do: "<a new store>",
      else: inspect(arg, limit: 5, printable_limit: 40)
  end

  defp describe(calls) do
    Enum.map_join(calls, "\n", fn {name, args} ->
      "  Wasmbeam.Native.#{name}(" <>
        Enum.map_join(args, ", ", &describe_arg/1) <> ")"
    end)
  end
end
