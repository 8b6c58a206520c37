defmodule Wasmbeam.Component.AdversarialTest do
  # Hostile inputs for components: terms a caller should not send, guests
  # that lie about what they return, component types built to exhaust the
  # atom table. Each test checks the answer is a clear %Wasmbeam.Error{}
  # and the VM and the library keep running. Tests tagged :known_defect
  # fail today (left out of the default run by test_helper.exs); the
  # comment above each has the evidence.
  use ExUnit.Case, async: false

  alias Wasmbeam.{Component, Error}
  alias Wasmbeam.Component.Instance, as: CI
  alias Wasmbeam.Test.ComponentWat

  # A guest whose results lie: invalid UTF-8, pointers out of bounds,
  # and a list<string> of `n` entries that all point at the same 64 KiB
  # of its memory (8 bytes of guest memory per 64 KiB lifted).
  @liar ~S'''
  (component
    (core module $m
      (memory (export "mem") 80)
      (func (export "big-list") (param $n i32) (result i32)
        i32.const 400000 i32.const 0 i32.store
        i32.const 400004 local.get $n i32.store
        i32.const 400000)
      (func (export "bad-utf8") (result i32)
        i32.const 0 i32.const 0xff i32.store8
        i32.const 400000 i32.const 0 i32.store
        i32.const 400004 i32.const 1 i32.store
        i32.const 400000)
      (func (export "oob-string") (result i32)
        i32.const 400000 i32.const 0xFFFF0000 i32.store
        i32.const 400004 i32.const 0x1000 i32.store
        i32.const 400000)
      (func (export "huge-list") (result i32)
        i32.const 400000 i32.const 0 i32.store
        i32.const 400004 i32.const 0x40000000 i32.store
        i32.const 400000)
      (func (export "amplify") (param $n i32) (result i32)
        (local $i i32)
        (block $done
          (loop $l
            local.get $i local.get $n i32.ge_u br_if $done
            ;; entry i at 65536 + 8i: (ptr 0, len 65536)
            local.get $i i32.const 8 i32.mul i32.const 65536 i32.add
            i32.const 0 i32.store
            local.get $i i32.const 8 i32.mul i32.const 65540 i32.add
            i32.const 65536 i32.store
            local.get $i i32.const 1 i32.add local.set $i
            br $l))
        i32.const 400000 i32.const 65536 i32.store
        i32.const 400004 local.get $n i32.store
        i32.const 400000))
    (core instance $i (instantiate $m))
    (func (export "bad-utf8") (result string)
      (canon lift (core func $i "bad-utf8") (memory $i "mem")))
    (func (export "oob-string") (result string)
      (canon lift (core func $i "oob-string") (memory $i "mem")))
    (func (export "huge-list") (result (list u32))
      (canon lift (core func $i "huge-list") (memory $i "mem")))
    (func (export "big-list") (param "n" u32) (result (list u32))
      (canon lift (core func $i "big-list") (memory $i "mem")))
    (func (export "amplify") (param "n" u32) (result (list string))
      (canon lift (core func $i "amplify") (memory $i "mem"))))
  '''

  setup_all do
    {:ok,
     calc: Component.compile!(ComponentWat.calc()),
     echo: Component.compile!(ComponentWat.echo()),
     liar: Component.compile!(@liar)}
  end

  defp alive! do
    # The library's application and its supervisors still run.
    assert Enum.any?(Application.started_applications(), &(elem(&1, 0) == :wasmbeam))
    assert {:ok, _} = Component.compile("(component)")
  end

  defp unique, do: "n#{System.unique_integer([:positive])}-#{:rand.uniform(1_000_000_000)}"

  describe "hostile terms for a record argument (echo-point)" do
    setup ctx, do: {:ok, echo: CI.new!(ctx.echo)}

    test "every bad shape is a :type error", %{echo: e} do
      bad = [
        # bignum and huge integers
        %{x_coord: 2 ** 200, label: "a"},
        %{x_coord: -(2 ** 64), label: "a"},
        %{x_coord: 2 ** 31, label: "a"},
        # float where an integer goes
        %{x_coord: 1.0, label: "a"},
        # non-UTF-8 string, iolist, charlist
        %{x_coord: 1, label: <<0xFF, 0xFE>>},
        %{x_coord: 1, label: ["a", "b"]},
        %{x_coord: 1, label: ~c"ab"},
        # bitstring that is not a binary
        %{x_coord: 1, label: <<1::3>>},
        # the same field twice (atom and string key)
        %{:x_coord => 1, "x_coord" => 2, :label => "a"},
        # the kebab spelling, a field of another case, an extra key
        %{"x-coord" => 1, label: "a"},
        %{X_coord: 1, label: "a"},
        %{x_coord: 1, label: "a", extra: 1},
        %{1 => 1, label: "a"},
        # not a map at all
        {1, "a"},
        [x_coord: 1, label: "a"],
        %{},
        nil
      ]

      for term <- bad do
        assert {:error, %Error{kind: :type, message: message}} = CI.call(e, "echo-point", [term]),
               "accepted #{inspect(term)}"

        assert message =~ "argument 1 (p)"
      end

      assert {:ok, %{x_coord: 1, label: "a"}} =
               CI.call(e, "echo-point", [%{x_coord: 1, label: "a"}])
    end

    test "argument lists that are not proper lists, and bad export names", %{echo: e} do
      assert {:error, %Error{}} = CI.call(e, "echo-point", [%{x_coord: 1, label: "a"} | :tail])
      assert {:error, %Error{}} = CI.call(e, "echo-point", :not_a_list)
      assert {:error, %Error{}} = CI.call(e, "echo-bytes", [[1, 2 | 3]])
      assert {:error, %Error{}} = CI.call(e, "echo-bytes", [[1, 256]])
      assert {:error, %Error{}} = CI.call(e, "echo-bytes", [[-1]])
      assert {:error, %Error{}} = CI.call(e, "echo-string", [<<0xC3>>])
      assert {:error, %Error{}} = CI.call(e, <<0xFF>>, [])
      assert {:error, %Error{}} = CI.call(e, {<<0xFF>>, "x"}, [])
      assert {:error, %Error{}} = CI.call(e, "a#b#c", [])
      assert {:error, %Error{}} = CI.call(e, String.duplicate("x", 1_000_000), [])
      assert {:error, %Error{}} = CI.call(e, :echo_point, [])
      alive!()
    end

    test "a 1 MB string round-trips in a record and as bytes", %{echo: e} do
      big = :binary.copy("a", 1_000_000)
      assert {:ok, ^big} = CI.call(e, "echo-bytes", [big])
      CI.call(e, "reset", [])
      assert {:ok, %{label: ^big}} = CI.call(e, "echo-point", [%{x_coord: 1, label: big}])
      alive!()
    end

    # Faults of the guest during a call are reported with kind :link,
    # though nothing is being linked:
    # - the echo guest (40 pages, a bump realloc that never grows memory)
    #   given a 10 MB argument: {:error, %Error{kind: :link, message:
    #   "realloc return: beyond end of memory"}};
    # - a guest whose list<string> result lifts one 64 KiB region 16,384
    #   times: {:error, %Error{kind: :link, message: "too much data is
    #   being copied between the host and the guest: fuel allocated for
    #   hostcalls has been exhausted"}}.
    # Expected: :trap (or :limit for the hostcall fuel), as DESIGN.md 7
    # asks for traps that carry their kind; a caller mapping :link to
    # "fix your deployment" would misfile both.
    test "a guest fault during a call is not a :link error", %{echo: e} = ctx do
      big = :binary.copy("a", 10_000_000)
      assert {:error, %Error{kind: kind}} = CI.call(e, "echo-bytes", [big])
      l = CI.new!(ctx.liar)
      assert {:error, %Error{kind: kind2}} = CI.call(l, "amplify", [16_384])

      assert {kind, kind2} |> Tuple.to_list() |> Enum.all?(&(&1 != :link)),
             "kinds: #{inspect({kind, kind2})}"

      alive!()
    end
  end

  # Identity functions over one flat value each, and a guest that
  # returns out-of-range core values for char, enum and bool.
  @scalars ~S'''
  (component
    (core module $m
      (func (export "id32") (param i32) (result i32) local.get 0)
      (func (export "idf32") (param f32) (result f32) local.get 0)
      (func (export "idf64") (param f64) (result f64) local.get 0)
      (func (export "const") (param i32) (result i32) local.get 0))
    (core instance $i (instantiate $m))
    (type $color (enum "red" "dark-magenta"))
    (export $c "color-type" (type $color))
    (type $perm (flags "read" "write"))
    (export $p "perm-type" (type $perm))
    (func (export "f32") (param "x" float32) (result float32) (canon lift (core func $i "idf32")))
    (func (export "f64") (param "x" float64) (result float64) (canon lift (core func $i "idf64")))
    (func (export "char") (param "x" char) (result char) (canon lift (core func $i "id32")))
    (func (export "bool") (param "x" bool) (result bool) (canon lift (core func $i "id32")))
    (func (export "u8") (param "x" u8) (result u8) (canon lift (core func $i "id32")))
    (func (export "color") (param "x" $c) (result $c) (canon lift (core func $i "id32")))
    (func (export "perm") (param "x" $p) (result $p) (canon lift (core func $i "id32")))
    (func (export "raw-char") (param "x" u32) (result char) (canon lift (core func $i "const")))
    (func (export "raw-color") (param "x" u32) (result $c) (canon lift (core func $i "const")))
    (func (export "raw-perm") (param "x" u32) (result $p) (canon lift (core func $i "const")))
    (func (export "raw-bool") (param "x" u32) (result bool) (canon lift (core func $i "const"))))
  '''

  describe "hostile scalars (float, char, bool, u8, enum, flags)" do
    setup do
      {:ok, s: CI.new!(Component.compile!(@scalars))}
    end

    test "bad terms are :type errors, good ones round-trip", %{s: s} do
      bad = [
        {"f32", [{:nan, 2 ** 40}, {:nan}, {:nan, -1}, {:nan, 1, 2}, 2 ** 1024, "1.0", nil, :NaN]},
        {"f64", [{:nan, 2 ** 64}, {:nan, 1.0}, :inf, 2 ** 2000]},
        {"char", ["ab", "", <<0xFF>>, 0xD800, 0x110000, -1, 2 ** 70, ~c"a", :a]},
        {"bool", [nil, 1, 0, "true", :True]},
        {"u8", [256, -1, 2 ** 64, 2 ** 100, 1.0, "1"]},
        {"color", [:Red, :RED, :blue, "red", :red_, {:red}, {:red, 1}, 0, nil]},
        {"perm", [:read, ["read"], [:exec], [:read, 1], %{read: true}, nil]}
      ]

      for {f, terms} <- bad, t <- terms do
        assert {:error, %Error{kind: :type}} = CI.call(s, f, [t]), "#{f} accepted #{inspect(t)}"
      end

      good = [
        {"f32", 1.5, 1.5},
        {"f32", :nan, :nan},
        {"f32", :infinity, :infinity},
        {"f64", :neg_infinity, :neg_infinity},
        {"char", "é", "é"},
        {"char", 0x1F600, "😀"},
        {"bool", true, true},
        {"u8", 255, 255},
        {"color", :dark_magenta, :dark_magenta},
        {"perm", [:write, :read, :write], [:read, :write]},
        {"perm", [], []}
      ]

      for {f, input, output} <- good do
        assert {:ok, ^output} = CI.call(s, f, [input]), "#{f} #{inspect(input)}"
      end

      alive!()
    end

    # A flags argument given as an improper list: component_values.rs
    # checks term.is_list() (true for [:read | :write]) and then decodes
    # Vec<Term>, which panics in rustler ("list iterator found improper
    # list"). The guard turns it into {:error, %Error{kind: :panic,
    # message: "native panic: list iterator found improper list"}} and
    # prints a Rust backtrace on stderr. Expected: a :type error naming
    # argument 1, as for every other bad term.
    test "an improper list for flags is a :type error, not a native panic", %{s: s} do
      assert {:error, %Error{kind: :type}} = CI.call(s, "perm", [[:read | :write]])

      assert {:error, %Error{kind: :type}} =
               CI.call(s, "perm", [[:read, :write | []] ++ [:x | :y]])
    end

    # The same improper list as a host handler's answer is worse: the
    # panic is caught while the guest waits in its host call, the call
    # answers {:error, %Error{kind: :panic}}, and the store is left with
    # that call suspended: every later call on the store answers
    # {:error, %Error{kind: :busy, "a call is already running on this
    # store"}} (wait: true included), so one bad answer wedges the
    # instance for good (an instance process would never re-instantiate:
    # busy is not a trap). Reproduction: /work/adv-repro/host_flags.exs.
    # Expected: the call traps with the import's name ("host function
    # get: ... must be flags"), as the answer :bad does, and the next
    # call says the instance cannot be entered again.
    test "a handler answering an improper list for flags traps; the store is not wedged" do
      wat = ~S"""
      (component
        (type $pt (flags "read" "write"))
        (import "perm" (type $p (eq $pt)))
        (import "get" (func $get (result $p)))
        (core func $g (canon lower (func $get)))
        (core module $m
          (import "h" "get" (func $get (result i32)))
          (func (export "run") (result i32) call $get))
        (core instance $i (instantiate $m (with "h" (instance (export "get" (func $g))))))
        (export $pe "perm-out" (type $p))
        (func (export "run") (result $pe) (canon lift (core func $i "run"))))
      """

      c = Component.compile!(wat)
      good = CI.new!(c, %{"get" => fn _c -> [:write, :read] end})
      assert {:ok, [:read, :write]} = CI.call(good, "run", [])

      i = CI.new!(c, %{"get" => fn _c -> [:read | :write] end})
      assert {:error, %Error{kind: :trap, message: m}} = CI.call(i, "run", [])
      assert m =~ "get"
      assert {:error, %Error{kind: kind}} = CI.call(i, "run", [], wait: true, timeout: 1_000)
      assert kind != :busy
    end

    test "a guest's out-of-range char, enum, flags and bool are errors or canonical", ctx do
      fresh = fn -> CI.new!(Component.compile!(@scalars)) end
      assert {:error, %Error{}} = CI.call(fresh.(), "raw-char", [0xD800])
      assert {:error, %Error{}} = CI.call(fresh.(), "raw-char", [0x110000])
      assert {:error, %Error{}} = CI.call(fresh.(), "raw-color", [2])
      assert {:error, %Error{}} = CI.call(fresh.(), "raw-color", [0xFFFFFFFF])

      case CI.call(fresh.(), "raw-perm", [0xFF]) do
        {:ok, flags} -> assert Enum.all?(flags, &(&1 in [:read, :write]))
        {:error, %Error{}} -> :ok
      end

      assert {:ok, true} = CI.call(fresh.(), "raw-bool", [7])
      _ = ctx
      alive!()
    end
  end

  describe "scheduling of argument decoding" do
    # The message of an out-of-range or wrong-type error shows the term
    # (nif/inspect.rs), and an integer is written with Rustler's Debug
    # ("{term:?}"), which is quadratic in the integer's size: for a
    # 125 KB integer (2 ** 1_000_000) as an s32 the plain NIF
    # component_call took 4.1 s on the caller's normal scheduler, for a
    # 500 KB one (2 ** 4_000_000) 54 s (Integer.to_string/1 of the same takes 0 ms), to
    # print a message cut to 1 KB anyway. Reproduction:
    # /work/adv-repro/bignum3.exs. Expected: the error at once (digits
    # cut before formatting, or the size shown), the scheduler free.
    test "a huge integer argument is refused without holding a scheduler", ctx do
      e = CI.new!(ctx.echo)
      big = Bitwise.bsl(1, 500_000)
      me = self()
      :erlang.system_monitor(me, long_schedule: 100)

      try do
        task =
          Task.async(fn ->
            :timer.tc(fn -> CI.call(e, "echo-point", [%{x_coord: big, label: "a"}]) end)
          end)

        {micros, result} = Task.await(task, 60_000)
        assert {:error, %Error{kind: :type}} = result
        pid = task.pid

        long =
          receive do
            {:monitor, ^pid, :long_schedule, info} -> info
          after
            100 -> nil
          end

        assert long == nil,
               "the caller held its scheduler #{div(micros, 1000)} ms: #{inspect(long)}"
      after
        :erlang.system_monitor(:undefined)
      end
    end

    # component_call is a plain (normal-scheduler) NIF and decodes the
    # whole argument term before the guest runs: a list of 3M integers
    # for a list<u8> (the dynamic path: a list, not a binary) holds the
    # calling process's scheduler for the whole decode without yielding.
    # Evidence: :erlang.system_monitor long_schedule reports the caller
    # (long_schedule of 401 to 1,024 ms on this machine, out:
    # {Wasmbeam.Driver, :finish, 2}), while
    # DESIGN.md says a call never holds a normal scheduler for more than
    # about 1 ms. Expected: decoding in slices, or on a dirty scheduler
    # past a size, or a :limit error.
    test "a 3M-element list argument does not hold a normal scheduler", ctx do
      e = CI.new!(ctx.echo, %{}, memory_size: 64 * 1024 * 1024)
      list = List.duplicate(7, 3_000_000)
      me = self()
      :erlang.system_monitor(me, long_schedule: 100)

      try do
        task = Task.async(fn -> CI.call(e, "echo-bytes", [list]) end)
        result = Task.await(task, 60_000)
        assert match?({:ok, _}, result) or match?({:error, %Error{}}, result)
        pid = task.pid

        long =
          receive do
            {:monitor, ^pid, :long_schedule, info} -> info
          after
            100 -> nil
          end

        assert long == nil, "the caller held its scheduler: #{inspect(long)}"
      after
        :erlang.system_monitor(:undefined)
      end
    end

    # The same for a result: a guest's list<u32> of 1.2M elements (4.8 MB
    # of its memory) is lifted into Vals and encoded as terms within one
    # poll, on the caller's normal scheduler. Encoding a result this large
    # now moves to a dirty scheduler (`{:dirty_result, _}`), but Wasmtime
    # lifts it inside the call's poll, which no epoch interrupts: still
    # 173 ms on one normal scheduler. Open.
    @tag :known_defect
    test "a 1.2M-element list result does not hold a normal scheduler", ctx do
      l = CI.new!(ctx.liar)
      me = self()
      :erlang.system_monitor(me, long_schedule: 100)

      try do
        task = Task.async(fn -> CI.call(l, "big-list", [1_200_000]) |> summary() end)
        assert {:ok, {:list_of, 1_200_000}} = Task.await(task, 60_000)
        pid = task.pid

        long =
          receive do
            {:monitor, ^pid, :long_schedule, info} -> info
          after
            100 -> nil
          end

        assert long == nil, "the caller held its scheduler: #{inspect(long)}"
      after
        :erlang.system_monitor(:undefined)
      end
    end
  end

  describe "a guest that lies about its results" do
    setup ctx, do: {:ok, liar: CI.new!(ctx.liar)}

    test "invalid UTF-8, out-of-bounds strings and lists are errors", %{liar: l} do
      assert {:error, %Error{message: m1}} = CI.call(l, "bad-utf8", [])
      assert m1 =~ ~r/utf-?8/i

      assert {:error, %Error{}} =
               CI.call(CI.new!(elem(Map.fetch(%{c: l.component}, :c), 1)), "oob-string", [])

      assert {:error, %Error{}} = CI.call(CI.new!(l.component), "huge-list", [])
      alive!()
    end

    # A list<string> of 16,384 entries that all point at the same 64 KiB
    # of guest memory: 128 KiB of guest memory would lift as 1 GiB.
    # Wasmtime's hostcall fuel stops it (passes today; reproduction at
    # other sizes: /work/adv-repro/amplify.exs N). The error's kind is
    # checked in "a guest fault during a call is not a :link error".
    test "a guest cannot lift one 64 KiB region thousands of times", %{liar: l} do
      {pid, ref} =
        spawn_monitor(fn ->
          exit({:result, CI.call(l, "amplify", [16_384]) |> summary()})
        end)

      assert_receive {:DOWN, ^ref, :process, ^pid, {:result, result}}, 120_000
      assert {:error, %Error{}} = result
      alive!()
    end
  end

  defp summary({:ok, list}) when is_list(list), do: {:ok, {:list_of, length(list)}}
  defp summary(other), do: other

  # A trap poisons a component instance (the component model): the next
  # call says so, and a new instance of the same component works.
  defp after_trap!(ctx, i) do
    case CI.call(i, "add", [2, 3], wait: true, timeout: 2_000) do
      {:ok, 5} -> :ok
      {:error, %Error{message: m}} -> assert m =~ "cannot be entered again"
    end

    assert {:ok, 5} = CI.call(calc!(ctx), "add", [2, 3])
    alive!()
  end

  defp calc!(ctx), do: CI.new!(ctx.calc, %{"log" => fn _c, x -> x end})

  describe "host handlers that misbehave" do
    for {label, handler} <- [
          wrong_type: quote(do: fn _c, _x -> "not a u32" end),
          out_of_range: quote(do: fn _c, _x -> 2 ** 40 end),
          bignum: quote(do: fn _c, _x -> 2 ** 300 end),
          float: quote(do: fn _c, _x -> 1.5 end),
          tuple: quote(do: fn _c, _x -> {:ok, 1} end),
          raises: quote(do: fn _c, _x -> raise "boom" end),
          throws: quote(do: fn _c, _x -> throw(:boom) end),
          exits: quote(do: fn _c, _x -> exit(:boom) end),
          exits_kill: quote(do: fn _c, _x -> exit(:kill) end),
          returns_pid: quote(do: fn _c, _x -> self() end)
        ] do
      test "a handler that #{label} traps the call with the import's name", ctx do
        i = CI.new!(ctx.calc, %{"log" => unquote(handler)})
        assert {:error, %Error{message: message}} = CI.call(i, "run", [1])
        assert message =~ "log"
        after_trap!(ctx, i)
        alive!()
      end
    end

    test "a handler that sleeps past the call's timeout", ctx do
      i = CI.new!(ctx.calc, %{"log" => fn _c, x -> Process.sleep(300) && x end})
      assert {:error, %Error{kind: :timeout}} = CI.call(i, "run", [1], timeout: 50)
      alive!()
    end

    test "a handler arity that does not match is refused at link time", ctx do
      assert {:error, %Error{}} = CI.new(ctx.calc, %{"log" => fn _c -> 1 end})
      assert {:error, %Error{}} = CI.new(ctx.calc, %{"log" => :not_a_fun})
      assert {:error, %Error{}} = CI.new(ctx.calc, %{"log" => {:process, :nobody_here}, "x" => 1})
      assert {:error, %Error{}} = CI.new(ctx.calc, %{<<0xFF>> => fn _c, x -> x end})
      assert {:error, %Error{}} = CI.new(ctx.calc, %{"iface" => %{1 => 2}})
    end

    test "a handler process that does not exist traps the call", ctx do
      i = CI.new!(ctx.calc, %{"log" => {:process, :no_such_wasmbeam_server}})
      assert {:error, %Error{}} = CI.call(i, "run", [1], timeout: 1_000)
      after_trap!(ctx, i)
    end

    test "killing the caller while its handler runs: the next call is answered", ctx do
      test = self()

      i =
        CI.new!(ctx.calc, %{
          "log" => fn _c, x ->
            send(test, {:in_handler, self()})
            Process.sleep(10_000)
            x
          end
        })

      {caller, ref} = spawn_monitor(fn -> CI.call(i, "run", [1]) end)
      assert_receive {:in_handler, ^caller}, 5_000
      Process.exit(caller, :kill)
      assert_receive {:DOWN, ^ref, :process, ^caller, :killed}
      # after_trap! waits (wait: true) for the reaper to hand the store back.
      after_trap!(ctx, i)
    end
  end

  describe "component types built against the atom table" do
    defp record_component(fields) do
      decl = Enum.map_join(fields, " ", &"(field \"#{&1}\" u8)")
      "(component (type $r (record #{decl})) (export \"r\" (type $r)))"
    end

    test "10,001 new names: a :limit error and none of them becomes an atom" do
      prefix = "q" <> String.replace(unique(), "-", "")
      a = for i <- 1..5_001, do: "#{prefix}-a#{i}"
      b = for i <- 1..5_000, do: "#{prefix}-b#{i}"

      wat =
        "(component (type $a (record " <>
          Enum.map_join(a, " ", &"(field \"#{&1}\" u8)") <>
          ")) (type $b (record " <>
          Enum.map_join(b, " ", &"(field \"#{&1}\" u8)") <>
          ")) (export \"a\" (type $a)) (export \"b\" (type $b)))"

      assert {:error, %Error{kind: :limit}} = Component.compile(wat)

      for name <- [hd(a), List.last(a), hd(b)] do
        snake = String.replace(name, "-", "_")
        assert_raise ArgumentError, fn -> String.to_existing_atom(snake) end
      end
    end

    # make_name_atoms checks each name's length only inside the loop that
    # creates the atoms (after the count was taken from NEW_NAMES), so a
    # component with a name over 255 bytes is refused with :limit only
    # after every name sorted before it became an atom, and its count is
    # never given back to NEW_NAMES. Repeating it leaks atoms and uses up
    # the 200,000 bound for every later component: 21 refused compiles
    # made 200,056 atoms, and then a valid component with one new field
    # name was refused ("components have made 200000 atoms for their type
    # names; 1 more would pass the limit"): no component with a new name
    # compiles in that VM again. Reproduction (own VM):
    # /work/adv-repro/atom_budget.exs. Expected: nothing is created and
    # nothing counted when the compile is refused.
    test "a refused component (a name over 255 bytes) creates no atoms" do
      short = "a" <> String.replace(unique(), "-", "") <> "-early"
      long = "z" <> String.duplicate("z", 299)

      assert {:error, %Error{kind: :limit}} = Component.compile(record_component([short, long]))

      snake = String.replace(short, "-", "_")

      assert_raise ArgumentError, fn -> String.to_existing_atom(snake) end
    end

    test "type nesting at the validator's depth compiles and values round-trip through it" do
      depth = 100

      types =
        for i <- 1..depth, into: "" do
          prev = if i == 1, do: "u32", else: "$t#{i - 1}"
          "(type $t#{i} (option #{prev}))\n"
        end

      wat = "(component\n#{types}(export \"t\" (type $t#{depth})))"
      result = Component.compile(wat)
      assert match?({:ok, _}, result) or match?({:error, %Error{}}, result)
      deeper = "(component\n#{types}(type $x (option $t#{depth}))(export \"t\" (type $x)))"
      assert {:error, %Error{}} = Component.compile(deeper)
      alive!()
    end

    test "thousands of exports and very long names describe within bounds" do
      long = String.duplicate("a", 100_000)

      funcs =
        Enum.map_join(1..3_000, "\n", fn i ->
          "(func (export \"f#{i}\") (canon lift (core func $i \"f\")))"
        end)

      wat = """
      (component
        (core module $m (func (export "f")))
        (core instance $i (instantiate $m))
        #{funcs}
        (func (export "#{long}") (canon lift (core func $i "f"))))
      """

      assert {:ok, c} = Component.compile(wat)
      assert length(Component.exports(c)) == 3_001
      assert byte_size(inspect(c)) < 200_000
      i = CI.new!(c)
      assert :ok = CI.call(i, long, [])
      assert :ok = CI.call(i, "f3000", [])
    end
  end

  describe "forged, foreign and dead resource handles" do
    @counters "wasmbeam:test/counters@0.1.0"
    @observer "wasmbeam:test/observer@0.1.0"

    setup do
      c = Component.compile_file!(Wasmbeam.ComponentFixtures.path!("resources"))
      imports = %{@observer => %{"dropped" => fn _caller, _id -> :ok end}}
      {:ok, resources: c, imports: imports}
    end

    defp counter!(i, id),
      do: CI.call!(i, {@counters, "[constructor]counter"}, [id, 1])

    test "forged handles in borrow and own positions are errors", ctx do
      i = CI.new!(ctx.resources, ctx.imports)
      real = counter!(i, 1)

      forged = [
        %Wasmbeam.Component.Resource{ref: make_ref(), store: make_ref()},
        %Wasmbeam.Component.Resource{ref: real.store, store: real.store},
        %Wasmbeam.Component.Resource{ref: nil, store: nil},
        real.store,
        :counter,
        1
      ]

      for f <- forged, fun <- ["peek", "consume"] do
        assert {:error, %Error{}} = CI.call(i, {@counters, fun}, [f]), inspect({fun, f})
      end

      for f <- forged do
        assert {:error, %Error{}} = Wasmbeam.Component.Resource.drop(f)
      end

      # The real handle still works: nothing above consumed it.
      assert {:ok, 1} = CI.call(i, {@counters, "peek"}, [real])
      alive!()
    end

    # Resource.drop/2 drives the call with the struct's :store field, but
    # the NIF starts the drop on the resource's own store. Given a handle
    # whose :store was replaced (a stale or forged struct), drop/2 answers
    # {:error, ...} and leaves the drop started and never driven on the
    # real store: every later call on that store answers
    # {:error, %Error{kind: :busy, "a call is already running on this
    # store"}}, also with wait: true after 2 s, and the instance is
    # wedged for good. Expected: an :argument error before anything is
    # started (or the drop done and :ok), and the store usable.
    test "a drop with a mismatched :store does not wedge the real store", ctx do
      i = CI.new!(ctx.resources, ctx.imports)
      real = counter!(i, 1)
      forged = %Wasmbeam.Component.Resource{ref: real.ref, store: make_ref()}
      assert {:error, %Error{}} = Wasmbeam.Component.Resource.drop(forged)
      assert {:ok, _} = CI.call(i, {@counters, "live-count"}, [], wait: true, timeout: 2_000)
      assert {:ok, 1} = CI.call(i, {@counters, "peek"}, [real], wait: true, timeout: 2_000)
    end

    test "drops and calls racing while a destructor's host call keeps the store busy", ctx do
      test = self()

      imports = %{
        @observer => %{
          "dropped" => fn _caller, id ->
            send(test, {:dropping, id, self()})
            if id == 1, do: Process.sleep(300)
            :ok
          end
        }
      }

      i = CI.new!(ctx.resources, imports)
      c1 = counter!(i, 1)
      c2 = counter!(i, 2)
      {maker, made} = spawn_monitor(fn -> counter!(i, 3) end)
      assert_receive {:DOWN, ^made, :process, ^maker, :normal}, 2_000

      dropper = Task.async(fn -> Wasmbeam.Component.Resource.drop(c1) end)
      assert_receive {:dropping, 1, _}, 2_000

      # The store is busy with the destructor: a call, a second drop of
      # the same handle and a drop of another are clear errors (or wait).
      assert {:error, %Error{kind: :busy}} = CI.call(i, {@counters, "peek"}, [c2], wait: false)
      assert {:error, %Error{}} = Wasmbeam.Component.Resource.drop(c1)
      assert {:error, %Error{kind: :busy}} = Wasmbeam.Component.Resource.drop(c2, wait: false)
      assert :ok = Task.await(dropper, 5_000)

      # c2 survived all that; counter 3 was collected (its process ended),
      # and is dropped at the store's next call.
      assert {:ok, 1} = CI.call(i, {@counters, "peek"}, [c2], wait: true, timeout: 2_000)
      :erlang.garbage_collect()
      assert {:ok, n} = CI.call(i, {@counters, "live-count"}, [], wait: true, timeout: 2_000)
      assert n in 1..2
      assert :ok = Wasmbeam.Component.Resource.drop(c2)
      assert_receive {:dropping, 2, _}
    end

    test "the dropper killed inside the destructor's host call: the store answers after", ctx do
      test = self()

      imports = %{
        @observer => %{
          "dropped" => fn _caller, id ->
            send(test, {:dropping, id, self()})
            Process.sleep(5_000)
            :ok
          end
        }
      }

      i = CI.new!(ctx.resources, imports)
      c1 = counter!(i, 1)
      c2 = counter!(i, 2)
      {dropper, ref} = spawn_monitor(fn -> Wasmbeam.Component.Resource.drop(c1) end)
      assert_receive {:dropping, 1, ^dropper}, 2_000
      Process.exit(dropper, :kill)
      assert_receive {:DOWN, ^ref, :process, ^dropper, :killed}

      case CI.call(i, {@counters, "peek"}, [c2], wait: true, timeout: 2_000) do
        {:ok, 1} -> :ok
        {:error, %Error{message: m}} -> assert m =~ "cannot be entered again"
      end

      assert {:error, %Error{}} = Wasmbeam.Component.Resource.drop(c1)
      alive!()
    end

    test "a handle of another store or another instance is refused", ctx do
      a = CI.new!(ctx.resources, ctx.imports)
      b = CI.new!(ctx.resources, ctx.imports)
      ca = counter!(a, 1)
      assert {:error, %Error{message: m}} = CI.call(b, {@counters, "peek"}, [ca])
      assert m =~ "another store"
      assert {:error, %Error{}} = CI.call(b, {@counters, "consume"}, [ca])
      # Same store, another instance of the component: another resource type.
      c = CI.new!(ctx.resources, ctx.imports, store: a.store)
      assert {:error, %Error{}} = CI.call(c, {@counters, "consume"}, [ca])
      assert {:ok, 1} = CI.call(a, {@counters, "consume"}, [ca])
      assert {:error, %Error{}} = CI.call(a, {@counters, "consume"}, [ca])
      assert {:error, %Error{}} = Wasmbeam.Component.Resource.drop(ca)
    end

    test "drops racing from many processes drop once", ctx do
      i = CI.new!(ctx.resources, ctx.imports)
      r = counter!(i, 9)

      results =
        1..20
        |> Enum.map(fn _ ->
          Task.async(fn -> Wasmbeam.Component.Resource.drop(r, wait: true) end)
        end)
        |> Enum.map(&Task.await(&1, 10_000))

      assert Enum.count(results, &(&1 == :ok)) == 1
      assert Enum.all?(results, &(&1 == :ok or match?({:error, %Error{}}, &1)))
      assert {:ok, 0} = CI.call(i, {@counters, "live-count"}, [])
    end

    test "a drop killed mid-way and handles collected while others call", ctx do
      i = CI.new!(ctx.resources, ctx.imports)

      makers = for n <- 1..200, do: spawn_monitor(fn -> counter!(i, n) end)

      r = counter!(i, 1000)
      dropper = spawn_monitor(fn -> Wasmbeam.Component.Resource.drop(r) end)
      Process.exit(elem(dropper, 0), :kill)

      for {pid, ref} <- [dropper | makers] do
        assert_receive {:DOWN, ^ref, :process, ^pid, _}, 5_000
      end

      :erlang.garbage_collect()

      # A dead maker's heap (and so its handle) may be freed just after its
      # DOWN arrives; each call first drops what was let go of since the
      # last one, so a few calls see every handle dropped.
      assert {:ok, n} = settled_live_count(i, 20)
      assert n in 0..1
      alive!()
    end
  end

  defp settled_live_count(i, tries) do
    case CI.call(i, {@counters, "live-count"}, [], wait: true, timeout: 5_000) do
      {:ok, n} when n > 1 and tries > 1 -> settled_live_count(i, tries - 1)
      other -> other
    end
  end

  describe "structs whose :store does not match their native handle" do
    # Component.Instance.call/4 starts the call on the native instance's
    # own store but drives it (Driver.run) with the struct's :store field.
    # A struct whose :store was replaced (by hand, by a stale copy, or
    # %{instance | store: other.store}) gets an error for any call that
    # does not finish in its first slice ("the host call this caller
    # belongs to has returned" for a host call, "no call is running on
    # this store" for a loop) and leaves the call suspended on the real
    # store: every later call there answers :busy, wait: true included,
    # for good. Reproduction: /work/adv-repro/swapped_store.exs.
    # Expected: the mismatch refused with an :argument error before
    # anything starts (or the :store field ignored), the store usable.
    test "a call through an instance struct with another store's :store does not wedge", ctx do
      i = calc!(ctx)
      other = calc!(ctx)
      forged = %{i | store: other.store}
      assert {:error, %Error{}} = CI.call(forged, "run", [1], timeout: 1_000)
      assert {:ok, 3} = CI.call(i, "add", [1, 2], wait: true, timeout: 1_000)

      j = calc!(ctx)
      assert {:error, %Error{}} = CI.call(%{j | store: other.store}, "spin", [], timeout: 200)
      assert {:ok, 3} = CI.call(j, "add", [1, 2], wait: true, timeout: 1_000)
      assert {:ok, 3} = CI.call(other, "add", [1, 2])
    end
  end

  describe "guests that trap or loop in post-return and realloc" do
    @post ~S'''
    (component
      (core module $m
        (memory (export "mem") 1)
        (func (export "realloc-trap") (param i32 i32 i32 i32) (result i32) unreachable)
        (func (export "realloc-loop") (param i32 i32 i32 i32) (result i32) (loop $l br $l) i32.const 0)
        (func (export "realloc-ok") (param i32 i32 i32 i32) (result i32) i32.const 100)
        (func (export "id") (param i32) (result i32) local.get 0)
        (func (export "str") (param i32 i32) (result i32)
          i32.const 0 local.get 0 i32.store i32.const 4 local.get 1 i32.store i32.const 0)
        (func (export "str3") (param i32 i32 i32) (result i32)
          i32.const 0 local.get 0 i32.store i32.const 4 local.get 1 i32.store i32.const 0)
        (func (export "pr-trap") (param i32) unreachable)
        (func (export "pr-loop") (param i32) (loop $l br $l)))
      (core instance $i (instantiate $m))
      (func (export "post-return-traps") (param "x" u32) (result u32)
        (canon lift (core func $i "id") (post-return (func $i "pr-trap"))))
      (func (export "post-return-loops") (param "x" u32) (result u32)
        (canon lift (core func $i "id") (post-return (func $i "pr-loop"))))
      (func (export "realloc-traps") (param "s" string) (result string)
        (canon lift (core func $i "str") (memory $i "mem") (realloc (func $i "realloc-trap"))))
      (func (export "realloc-loops") (param "s" string) (result string)
        (canon lift (core func $i "str") (memory $i "mem") (realloc (func $i "realloc-loop"))))
      (func (export "realloc-loops-rec") (param "s" string) (param "t" u32) (result string)
        (canon lift (core func $i "str3") (memory $i "mem") (realloc (func $i "realloc-loop"))))
      (func (export "str-pr-loops") (param "s" string) (result string)
        (canon lift (core func $i "str") (memory $i "mem") (realloc (func $i "realloc-ok")) (post-return (func $i "pr-loop")))))
    '''

    test "each is an error within the timeout; the instance then says it cannot be entered" do
      c = Component.compile!(@post)

      for {f, args} <- [
            {"post-return-traps", [1]},
            {"post-return-loops", [1]},
            {"realloc-traps", ["abc"]},
            {"realloc-loops", ["abc"]},
            {"realloc-loops-rec", ["abc", 1]},
            {"str-pr-loops", ["abc"]}
          ] do
        i = CI.new!(c)
        {t, r} = :timer.tc(fn -> CI.call(i, f, args, timeout: 200) end)
        assert {:error, %Error{kind: kind}} = r, f
        assert kind in [:trap, :timeout], f
        assert t < 5_000_000
        assert {:error, %Error{kind: next}} = CI.call(i, f, args, timeout: 200)
        assert next in [:trap, :timeout]
      end

      looping = CI.new!(c)
      {pid, ref} = spawn_monitor(fn -> CI.call(looping, "realloc-loops", ["abc"]) end)
      Wasmbeam.Test.Wat.await_busy(looping.store)
      Process.exit(pid, :kill)
      assert_receive {:DOWN, ^ref, :process, ^pid, :killed}
      alive!()
    end
  end

  describe "a %Component{} whose ref is not a live component" do
    # The NIFs know the case ("not a live component: its reference was
    # not made by Wasmbeam in this run of the VM (a forged or persisted
    # handle)"), but the Elixir side matches their answers:
    # - Instance.new/3 and LinkedModule.new/3 raise MatchError
    #   ({:ok, funcs} = Native.component_import_funcs(ref) in bindings/2);
    # - Instance.start_link(module: c) exits with {:badmatch, ...};
    # - Component.exports/1 and imports/1 raise ArgumentError ("2nd
    #   argument: not a tuple", elem/2 of the error), and inspect/1 shows
    #   #Inspect.Error<...>.
    # A component struct from persistent_term of a previous NIF load, or
    # from another node, is such a handle. DESIGN.md 7: "never a
    # MatchError from library code". Reproduction:
    # /work/adv-repro/forged_structs.exs. Expected: {:error, %Error{kind:
    # :argument}} from new/3 and start_link/1; exports/imports either
    # raise Wasmbeam.Error or answer []; inspect without Inspect.Error.
    test "Instance.new, LinkedModule.new and start_link answer an :argument error", ctx do
      bad = %{ctx.calc | ref: make_ref()}
      log = %{"log" => fn _c, x -> x end}
      assert {:error, %Error{kind: :argument}} = CI.new(bad, log)
      assert {:error, %Error{kind: :argument}} = Wasmbeam.LinkedModule.new(bad, log)
      Process.flag(:trap_exit, true)
      assert {:error, %Error{kind: :argument}} = Wasmbeam.Instance.start_link(module: bad)
    end

    test "exports, imports and inspect do not raise ArgumentError", ctx do
      bad = %{ctx.calc | ref: make_ref()}

      for f <- [&Component.exports/1, &Component.imports/1] do
        try do
          assert is_list(f.(bad))
        rescue
          e -> assert %Error{} = e
        end
      end

      refute inspect(bad) =~ "Inspect.Error"
    end

    test "calls, drops and serialize with dead refs answer :argument errors", ctx do
      i = calc!(ctx)
      bad = %{ctx.calc | ref: make_ref()}
      assert {:error, %Error{kind: :argument}} = Component.serialize(bad)
      assert {:error, %Error{kind: :argument}} = CI.call(%{i | ref: make_ref()}, "add", [1, 2])
      assert {:error, %Error{kind: :argument}} = CI.call(%{i | ref: ctx.calc.ref}, "add", [1, 2])

      assert {:error, %Error{kind: :argument}} =
               Wasmbeam.Component.Resource.drop(%Wasmbeam.Component.Resource{
                 ref: i.ref,
                 store: i.store.ref
               })

      assert {:ok, 3} = CI.call(i, "add", [1, 2])
    end
  end

  describe "serialized bytes, tampered" do
    test "truncated, flipped, empty, and a module's bytes are :deserialize errors", ctx do
      key = :crypto.strong_rand_bytes(32)
      bytes = Component.serialize!(ctx.calc, key: key)
      unsafe = Component.serialize!(ctx.calc)

      for b <- [
            binary_part(bytes, 0, div(byte_size(bytes), 2)),
            flip(bytes, byte_size(bytes) - 10),
            flip(bytes, 40),
            <<>>,
            bytes <> "x"
          ] do
        assert {:error, %Error{}} = Component.deserialize(b, key: key)
      end

      # A serialized core module is not a component, and the other way round.
      mod = Wasmbeam.Module.compile!("(module)")

      assert {:error, %Error{}} =
               Component.deserialize(Wasmbeam.Module.serialize!(mod, key: key), key: key)

      assert {:error, %Error{}} = Component.deserialize_unsafe(Wasmbeam.Module.serialize!(mod))
      assert {:error, %Error{}} = Wasmbeam.Module.deserialize(bytes, key: key)
      assert {:error, %Error{}} = Wasmbeam.Module.deserialize_unsafe(unsafe)

      for b <- [
            binary_part(unsafe, 0, byte_size(unsafe) - 1),
            flip(unsafe, div(byte_size(unsafe), 2)),
            <<>>
          ] do
        assert {:error, %Error{}} = Component.deserialize_unsafe(b)
      end

      alive!()
    end
  end

  defp flip(bin, at) do
    <<a::binary-size(at), b, rest::binary>> = bin
    <<a::binary, Bitwise.bxor(b, 0xFF), rest::binary>>
  end

  describe "instance processes and pools of a component that traps when instantiated" do
    @trap_start ~S'''
    (component
      (core module $m (func $s unreachable) (start $s))
      (core instance $i (instantiate $m)))
    '''

    test "Instance.start and Pool give an error; the application keeps running" do
      c = Component.compile!(@trap_start)
      assert {:error, %Error{}} = CI.new(c)
      Process.flag(:trap_exit, true)
      r = Wasmbeam.Instance.start_link(module: c)
      assert match?({:error, _}, r)

      case Wasmbeam.Pool.start_link(module: c, size: 2) do
        # A pool that started answers (its start-up is over) and still
        # cannot hand out an instance.
        {:ok, pool} -> assert {:error, %Error{}} = Wasmbeam.Pool.call(pool, "f", [])
        {:error, _} -> :ok
      end

      alive!()
    end
  end

  describe "ModuleCache and component bytes that do not compile" do
    test "an invalid component through the cache is an error, twice" do
      bad = "(component (core module $m (func (export \"f\") (result i32))))"
      assert {:error, %Error{}} = Component.compile(bad, cache: true)
      assert {:error, %Error{}} = Component.compile(bad, cache: true)

      assert {:error, %Error{}} =
               Component.compile(<<0, "asm", 0x0D, 0, 1, 0, 0xFF>>, cache: true)

      alive!()
    end
  end
end
