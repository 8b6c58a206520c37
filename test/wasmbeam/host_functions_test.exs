defmodule Wasmbeam.HostFunctionsTest do
  # Host functions: values of every type in both directions, where the
  # handler runs, handler processes, and every way a handler can fail.
  use ExUnit.Case, async: true

  import Bitwise, only: [<<<: 2]
  import Wasmbeam.Test.Wat

  require Logger

  alias Wasmbeam.{Error, Func, Instance, Module}

  # One pass-through export per value type: the guest hands its argument to
  # the host and returns what the host answered.
  @types_wat ~S[(module
    (import "env" "i32" (func $i32 (param i32) (result i32)))
    (import "env" "i64" (func $i64 (param i64) (result i64)))
    (import "env" "f32" (func $f32 (param f32) (result f32)))
    (import "env" "f64" (func $f64 (param f64) (result f64)))
    (import "env" "v128" (func $v128 (param v128) (result v128)))
    (import "env" "ext" (func $ext (param externref) (result externref)))
    (import "env" "fref" (func $fref (param funcref) (result funcref)))
    (import "env" "multi" (func $multi (param i32 i64 f32 f64) (result f64 f32 i64 i32)))
    (import "env" "none" (func $none))
    (func $double (export "double") (param i32) (result i32) local.get 0 i32.const 2 i32.mul)
    (elem declare func $double)
    (func (export "i32") (param i32) (result i32) local.get 0 call $i32)
    (func (export "i64") (param i64) (result i64) local.get 0 call $i64)
    (func (export "f32") (param f32) (result f32) local.get 0 call $f32)
    (func (export "f64") (param f64) (result f64) local.get 0 call $f64)
    (func (export "v128") (param v128) (result v128) local.get 0 call $v128)
    (func (export "ext") (param externref) (result externref) local.get 0 call $ext)
    (func (export "ext_null") (result externref) ref.null extern call $ext)
    (func (export "fref_double") (result funcref) ref.func $double call $fref)
    (func (export "fref_null") (result funcref) ref.null func call $fref)
    (func (export "multi") (param i32 i64 f32 f64) (result f64 f32 i64 i32)
      local.get 0 local.get 1 local.get 2 local.get 3 call $multi)
    (func (export "none") call $none)
    (func (export "f32_is_neg_zero") (param f32) (result i32)
      local.get 0 call $f32 i32.reinterpret_f32 i32.const 0x80000000 i32.eq)
    (func (export "f64_bits") (param f64) (result i64) local.get 0 call $f64 i64.reinterpret_f64))]

  # Each handler tells the test what it got and answers what the test put
  # in the process dictionary under {:answer, name} (the handler runs in the
  # test process), or echoes its argument(s).
  defp recording(name, arity) do
    case arity do
      1 ->
        fn _caller, x ->
          send(self(), {:got, name, [x]})
          Process.get({:answer, name}, x)
        end

      4 ->
        fn _caller, a, b, c, d ->
          send(self(), {:got, name, [a, b, c, d]})
          Process.get({:answer, name}, [d, c, b, a])
        end

      0 ->
        fn _caller ->
          send(self(), {:got, name, []})
          Process.get({:answer, name}, :ok)
        end
    end
  end

  defp types_instance do
    imports = %{
      "env" => %{
        "i32" => {:fn, [:i32], [:i32], recording("i32", 1)},
        "i64" => {:fn, [:i64], [:i64], recording("i64", 1)},
        "f32" => {:fn, [:f32], [:f32], recording("f32", 1)},
        "f64" => {:fn, [:f64], [:f64], recording("f64", 1)},
        "v128" => {:fn, [:v128], [:v128], recording("v128", 1)},
        "ext" => {:fn, [:externref], [:externref], recording("ext", 1)},
        "fref" => {:fn, [:funcref], [:funcref], recording("fref", 1)},
        "multi" =>
          {:fn, [:i32, :i64, :f32, :f64], [:f64, :f32, :i64, :i32], recording("multi", 4)},
        "none" => {:fn, [], [], recording("none", 0)}
      }
    }

    instance!(@types_wat, imports)
  end

  # Calls `export` with `arg` while the handler answers `answer`; returns
  # what the handler saw and the call's result.
  defp through(instance, name, arg, answer \\ :echo) do
    if answer == :echo,
      do: Process.delete({:answer, name}),
      else: Process.put({:answer, name}, answer)

    result = Instance.call(instance, name, [arg])
    assert_received {:got, ^name, [seen]}
    {seen, result}
  end

  defp bits32(x) when is_float(x), do: <<x::float-32>>

  describe "values from the guest to the host and back" do
    setup do
      %{instance: types_instance()}
    end

    test "i32, with signed and unsigned inputs", %{instance: i} do
      assert {5, {:ok, [7]}} = through(i, "i32", 5, 7)
      # the guest's bits are handed to the host as a signed integer
      assert {-1, {:ok, [-2]}} = through(i, "i32", 0xFFFF_FFFF, 0xFFFF_FFFE)

      assert {-2_147_483_648, {:ok, [2_147_483_647]}} =
               through(i, "i32", 0x8000_0000, 2_147_483_647)

      assert {0, {:ok, [-2_147_483_648]}} = through(i, "i32", 0, -2_147_483_648)
      assert {123, {:ok, [123]}} = through(i, "i32", 123)
    end

    test "i64, with signed and unsigned inputs", %{instance: i} do
      assert {-1, {:ok, [-1]}} = through(i, "i64", 0xFFFF_FFFF_FFFF_FFFF)

      assert {1_099_511_627_776, {:ok, [-9_223_372_036_854_775_808]}} =
               through(i, "i64", 1 <<< 40, 0x8000_0000_0000_0000)

      assert {-9_223_372_036_854_775_808, {:ok, [9_223_372_036_854_775_807]}} =
               through(i, "i64", -9_223_372_036_854_775_808, 9_223_372_036_854_775_807)

      assert {0, {:ok, [-2]}} = through(i, "i64", 0, 0xFFFF_FFFF_FFFF_FFFE)
    end

    test "f32: plain values, integers, infinities, NaNs with payloads, -0.0", %{instance: i} do
      assert {1.5, {:ok, [2.25]}} = through(i, "f32", 1.5, 2.25)
      # an integer answer is a float
      assert {-3.0, {:ok, [3.0]}} = through(i, "f32", -3, 3)
      assert {:infinity, {:ok, [:neg_infinity]}} = through(i, "f32", :infinity, :neg_infinity)
      assert {:neg_infinity, {:ok, [:infinity]}} = through(i, "f32", :neg_infinity, :infinity)
      assert {:nan, {:ok, [:nan]}} = through(i, "f32", :nan)

      assert {{:nan, 0x7FC0_0001}, {:ok, [{:nan, 0x7FC0_1234}]}} =
               through(i, "f32", {:nan, 0x7FC0_0001}, {:nan, 0x7FC0_1234})

      assert {{:nan, 0xFFC0_0000}, {:ok, [:nan]}} = through(i, "f32", {:nan, 0xFFC0_0000}, :nan)

      {seen, {:ok, [result]}} = through(i, "f32", negative_zero())
      assert bits32(seen) == bits32(negative_zero())
      assert bits32(result) == bits32(negative_zero())

      # the guest sees the sign of a -0.0 the host answered
      Process.put({:answer, "f32"}, negative_zero())
      assert {:ok, [1]} = Instance.call(i, "f32_is_neg_zero", [1.0])
      Process.put({:answer, "f32"}, 0.0)
      assert {:ok, [0]} = Instance.call(i, "f32_is_neg_zero", [1.0])
    end

    test "f64: plain values, infinities, NaNs with payloads, -0.0", %{instance: i} do
      assert {0.1, {:ok, [-1.0e300]}} = through(i, "f64", 0.1, -1.0e300)
      assert {:infinity, {:ok, [:neg_infinity]}} = through(i, "f64", :infinity, :neg_infinity)
      assert {:nan, {:ok, [:nan]}} = through(i, "f64", :nan)

      assert {{:nan, 0x7FF8_0000_0000_0001}, {:ok, [{:nan, 0xFFF8_0000_0000_0000}]}} =
               through(i, "f64", {:nan, 0x7FF8_0000_0000_0001}, {:nan, 0xFFF8_0000_0000_0000})

      {seen, {:ok, [result]}} = through(i, "f64", negative_zero())
      assert f64_bits(seen) == f64_bits(negative_zero())
      assert f64_bits(result) == f64_bits(negative_zero())

      # the exact bits reach the guest
      Process.put({:answer, "f64"}, {:nan, 0x7FF8_0000_0000_BEEF})
      assert {:ok, [0x7FF8_0000_0000_BEEF]} = Instance.call(i, "f64_bits", [1.0])
      Process.put({:answer, "f64"}, negative_zero())
      assert {:ok, [-9_223_372_036_854_775_808]} = Instance.call(i, "f64_bits", [1.0])
    end

    test "v128", %{instance: i} do
      max = (1 <<< 128) - 1
      assert {0, {:ok, [^max]}} = through(i, "v128", 0, max)
      assert {^max, {:ok, [1]}} = through(i, "v128", max, 1)
      # a negative answer is two's complement
      assert {5, {:ok, [^max]}} = through(i, "v128", 5, -1)
      big = 0x0102_0304_0506_0708_090A_0B0C_0D0E_0F10
      assert {^big, {:ok, [^big]}} = through(i, "v128", big)
    end

    test "externref carries any term both ways, nil is null", %{instance: i} do
      term = {:tuple, self(), make_ref(), %{list: [1, 2.5, "bin"]}, <<0, 255>>}
      answer = %{answer: [self(), make_ref()], fun: &Kernel.+/2}
      assert {^term, {:ok, [^answer]}} = through(i, "ext", term, answer)
      assert {^term, {:ok, [^term]}} = through(i, "ext", term)

      # null from the guest is nil in the host, nil from the host is null
      assert {nil, {:ok, [nil]}} = through(i, "ext", nil, nil)
      Process.delete({:answer, "ext"})
      assert {:ok, [nil]} = Instance.call(i, "ext_null", [])
      assert_received {:got, "ext", [nil]}
      Process.put({:answer, "ext"}, :from_host)
      assert {:ok, [:from_host]} = Instance.call(i, "ext_null", [])
    end

    test "funcref: the host gets a callable Func and can answer one or nil", %{instance: i} do
      Process.delete({:answer, "fref"})
      assert {:ok, [%Func{} = returned]} = Instance.call(i, "fref_double", [])
      assert_received {:got, "fref", [%Func{} = seen]}
      assert {:ok, [42]} = Func.call(seen, [21])
      assert {:ok, [10]} = Func.call(returned, [5])

      # null both ways
      assert {:ok, [nil]} = Instance.call(i, "fref_null", [])
      assert_received {:got, "fref", [nil]}

      Process.put({:answer, "fref"}, nil)
      assert {:ok, [nil]} = Instance.call(i, "fref_double", [])

      # a Func of the same store that the host had kept
      {:ok, double} = Instance.func(i, "double")
      Process.put({:answer, "fref"}, double)
      assert {:ok, [%Func{} = back]} = Instance.call(i, "fref_null", [])
      assert {:ok, [14]} = Func.call(back, [7])
    end

    test "a Func of another store is refused as a funcref answer", %{instance: i} do
      other = instance!(~S[(module (func (export "f") (param i32) (result i32) local.get 0))])
      {:ok, foreign} = Instance.func(other, "f")
      Process.put({:answer, "fref"}, foreign)

      assert {:error, %Error{kind: :trap, message: message}} = Instance.call(i, "fref_double", [])

      assert message =~ "host function env.fref"
      assert message =~ "another store"
      Process.delete({:answer, "fref"})
      assert {:ok, [%Func{}]} = Instance.call(i, "fref_double", [])
    end

    test "multiple values both ways", %{instance: i} do
      assert {:ok, [0.5, -1.5, -1, 7]} =
               Instance.call(i, "multi", [7, 0xFFFF_FFFF_FFFF_FFFF, -1.5, 0.5])

      assert_received {:got, "multi", [7, -1, -1.5, 0.5]}

      Process.put({:answer, "multi"}, [:infinity, :nan, 1 <<< 62, 0xFFFF_FFFF])

      assert {:ok, [:infinity, :nan, 4_611_686_018_427_387_904, -1]} =
               Instance.call(i, "multi", [0, 0, 0.0, 0.0])
    end

    test "no parameters and no results: :ok, nil and [] are all fine", %{instance: i} do
      for answer <- [:ok, nil, []] do
        Process.put({:answer, "none"}, answer)
        assert {:ok, []} = Instance.call(i, "none", [])
        assert_received {:got, "none", []}
      end
    end
  end

  describe "the handler runs in the process that made the call" do
    @echo_wat ~S[(module (import "env" "f" (func $f (param i32) (result i32)))
      (func (export "run") (param i32) (result i32) local.get 0 call $f))]

    test "self(), the process dictionary and Logger metadata are the caller's" do
      test_pid = self()

      handler = fn _caller, x ->
        send(test_pid, {:context, self(), Process.get(:request), Logger.metadata()[:request_id]})
        x + 1
      end

      instance = instance!(@echo_wat, %{"env" => %{"f" => {:fn, [:i32], [:i32], handler}}})

      Process.put(:request, {:user, 42})
      Logger.metadata(request_id: "req-1")
      assert {:ok, [2]} = Instance.call(instance, "run", [1])
      assert_received {:context, ^test_pid, {:user, 42}, "req-1"}

      # from another process, the handler sees that process
      task =
        Task.async(fn ->
          Process.put(:request, :from_task)
          Logger.metadata(request_id: "req-2")
          {self(), Instance.call(instance, "run", [10])}
        end)

      {task_pid, result} = Task.await(task)
      assert {:ok, [11]} = result
      assert_received {:context, ^task_pid, :from_task, "req-2"}
    end

    test "the handler can put things in the caller's process dictionary and mailbox" do
      handler = fn _caller, x ->
        Process.put(:seen, [x | Process.get(:seen, [])])
        send(self(), {:note, x})
        x
      end

      instance = instance!(@echo_wat, %{"env" => %{"f" => {:fn, [:i32], [:i32], handler}}})
      for x <- 1..3, do: assert({:ok, [^x]} = Instance.call(instance, "run", [x]))
      assert Process.get(:seen) == [3, 2, 1]
      assert_received {:note, 1}
      assert_received {:note, 3}
    end
  end

  describe "which handler runs" do
    # The calling process keeps copies of the handler registries it has
    # used; these tests change registries under it.
    @f_wat ~S[(module (import "env" "f" (func $f (param i32) (result i32)))
      (func (export "run") (param i32) (result i32) local.get 0 call $f))]
    @g_wat ~S[(module (import "env" "g" (func $g (param i32) (result i32)))
      (func (export "run") (param i32) (result i32) local.get 0 call $g))]

    defp adding(n), do: fn _caller, x -> x + n end

    test "instances with different handlers, called in turn by one process" do
      a = instance!(@f_wat, %{"env" => %{"f" => {:fn, [:i32], [:i32], adding(100)}}})
      b = instance!(@f_wat, %{"env" => %{"f" => {:fn, [:i32], [:i32], adding(200)}}})

      for x <- 1..5 do
        assert {:ok, [r]} = Instance.call(a, "run", [x])
        assert r == x + 100
        assert {:ok, [r]} = Instance.call(b, "run", [x])
        assert r == x + 200
      end
    end

    test "many registries in turn: each call runs its own instance's handler" do
      instances =
        for n <- 1..20,
            do: instance!(@f_wat, %{"env" => %{"f" => {:fn, [:i32], [:i32], adding(n)}}})

      for _round <- 1..2, {instance, n} <- Enum.with_index(instances, 1) do
        assert {:ok, [r]} = Instance.call(instance, "run", [1000])
        assert r == 1000 + n
      end

      # The process keeps copies of a few registries only.
      assert map_size(Process.get(:"$wasmbeam_host_handlers")) <= 8
    end

    test "a handler defined in the store after the first host call is found" do
      store = Wasmbeam.Store.new!()

      first =
        instance!(@f_wat, %{"env" => %{"f" => {:fn, [:i32], [:i32], adding(1)}}}, store: store)

      assert {:ok, [11]} = Instance.call(first, "run", [10])

      second =
        instance!(@g_wat, %{"env" => %{"g" => {:fn, [:i32], [:i32], adding(2)}}}, store: store)

      assert {:ok, [12]} = Instance.call(second, "run", [10])
      assert {:ok, [11]} = Instance.call(first, "run", [10])
    end

    test "a handler that captured a large term" do
      table = Map.new(1..10_000, &{&1, &1 * 3})
      lookup = fn _caller, x -> Map.fetch!(table, x) end
      instance = instance!(@f_wat, %{"env" => %{"f" => {:fn, [:i32], [:i32], lookup}}})

      for x <- [1, 5_000, 10_000],
          do: assert({:ok, [3 * x]} == Instance.call(instance, "run", [x]))
    end

    test "two-parameter and no-result signatures (typed host functions)" do
      wat = ~S[(module
        (import "env" "mix" (func $mix (param i32 f64) (result i64)))
        (import "env" "pair" (func $pair (param f32 i64)))
        (func (export "mix") (param i32 f64) (result i64) local.get 0 local.get 1 call $mix)
        (func (export "pair") (param f32 i64) local.get 0 local.get 1 call $pair))]

      test_pid = self()

      imports = %{
        "env" => %{
          "mix" => {:fn, [:i32, :f64], [:i64], fn _c, i, f -> i * 1_000_000_000 + trunc(f) end},
          "pair" => {:fn, [:f32, :i64], [], fn _c, f, i -> send(test_pid, {:pair, f, i}) end}
        }
      }

      instance = instance!(wat, imports)
      assert {:ok, [7_000_000_042]} = Instance.call(instance, "mix", [7, 42.9])
      assert {:ok, [-1_000_000_000]} = Instance.call(instance, "mix", [-1, 0.0])
      # `send/2` returns the message, not :ok or nil: the wrong answer for no results
      assert {:error, %Error{kind: :trap, message: message}} =
               Instance.call(instance, "pair", [1.5, -3])

      assert message =~ "env.pair"
      assert_received {:pair, 1.5, -3}

      # a result of the wrong type traps, naming the import
      wrong =
        put_in(imports, ["env", "mix"], {:fn, [:i32, :f64], [:i64], fn _c, _i, _f -> 1.5 end})

      instance = instance!(wat, wrong)

      assert {:error, %Error{kind: :trap, message: message}} =
               Instance.call(instance, "mix", [1, 2.0])

      assert message =~ "env.mix"
      # and the instance goes on
      assert {:error, %Error{kind: :trap}} = Instance.call(instance, "pair", [0.5, 1])
      assert_received {:pair, 0.5, 1}
    end
  end

  defmodule Handler do
    # A handler process: answers host calls as told by `behaviour`.
    use GenServer

    def start(behaviour, options \\ []), do: GenServer.start(__MODULE__, behaviour, options)

    @impl true
    def init(behaviour), do: {:ok, behaviour}

    @impl true
    def handle_call({:wasmbeam_host_call, name, %Wasmbeam.Caller{}, args}, from, behaviour) do
      case behaviour do
        {:report, pid} ->
          send(pid, {:handled, name, self(), args})
          [x] = args
          {:reply, [x * 10], behaviour}

        {:sleep, ms} ->
          Process.sleep(ms)
          {:reply, [0], behaviour}

        :crash ->
          raise "handler process crashed"

        :garbage ->
          {:reply, {:not, :a, :list}, behaviour}

        {:never, pid} ->
          send(pid, {:holding, from})
          {:noreply, behaviour}
      end
    end

    @impl true
    def handle_call(:ping, _from, behaviour), do: {:reply, :pong, behaviour}
  end

  describe "handler process mode" do
    @two_wat ~S[(module
      (import "env" "f" (func $f (param i32) (result i32)))
      (func (export "run") (param i32) (result i32) local.get 0 call $f)
      (func (export "plain") (result i32) i32.const 99))]

    defp process_instance(spec),
      do: instance!(@two_wat, %{"env" => %{"f" => {:fn, [:i32], [:i32], spec}}})

    test "by pid: the GenServer gets the import name, a caller and the args" do
      {:ok, server} = Handler.start({:report, self()})
      instance = process_instance({:process, server})

      assert {:ok, [70]} = Instance.call(instance, "run", [7])
      assert_received {:handled, "env.f", ^server, [7]}
      assert {:ok, [-10]} = Instance.call(instance, "run", [-1])
      GenServer.stop(server)
    end

    test "by registered name" do
      name = :"wasmbeam_handler_#{System.unique_integer([:positive])}"
      {:ok, server} = Handler.start({:report, self()}, name: name)
      instance = process_instance({:process, name, timeout: 5_000})

      assert {:ok, [30]} = Instance.call(instance, "run", [3])
      assert_received {:handled, "env.f", ^server, [3]}
      GenServer.stop(server)
    end

    test "a handler process that does not answer in time makes the guest trap" do
      {:ok, server} = Handler.start({:sleep, 300})
      instance = process_instance({:process, server, timeout: 50})

      assert {:error, %Error{kind: :trap, message: message}} = Instance.call(instance, "run", [1])
      assert message =~ "host function env.f"
      assert message =~ "did not answer"
      assert {:ok, [99]} = Instance.call(instance, "plain", [])

      # once the server is free again, the import works again
      assert :pong = GenServer.call(server, :ping, 5_000)
      test = self()
      :sys.replace_state(server, fn _ -> {:report, test} end)
      assert {:ok, [20]} = Instance.call(instance, "run", [2])
      GenServer.stop(server)
    end

    @tag :capture_log
    test "a handler process that crashes makes the guest trap" do
      {:ok, server} = Handler.start(:crash)
      ref = Process.monitor(server)
      instance = process_instance({:process, server})

      assert {:error, %Error{kind: :trap, message: message}} = Instance.call(instance, "run", [1])
      assert message =~ "host function env.f"
      assert message =~ "handler process crashed"
      assert_receive {:DOWN, ^ref, :process, ^server, _}
      assert {:ok, [99]} = Instance.call(instance, "plain", [])

      # a dead handler process: still a trap, not a crash
      assert {:error, %Error{kind: :trap, message: message}} = Instance.call(instance, "run", [1])
      assert message =~ "host function env.f"
      assert message =~ "noproc"
    end

    test "an unregistered name makes the guest trap" do
      instance = process_instance({:process, :wasmbeam_no_such_handler_process})
      assert {:error, %Error{kind: :trap, message: message}} = Instance.call(instance, "run", [1])
      assert message =~ "host function env.f"
      assert {:ok, [99]} = Instance.call(instance, "plain", [])
    end

    test "a handler process that answers garbage makes the guest trap" do
      {:ok, server} = Handler.start(:garbage)
      instance = process_instance({:process, server})

      assert {:error, %Error{kind: :trap, message: message}} = Instance.call(instance, "run", [1])
      assert message =~ "host function env.f"
      assert message =~ "not"
      assert message =~ "must be i32"
      assert {:ok, [99]} = Instance.call(instance, "plain", [])
      GenServer.stop(server)
    end

    test "an invalid handler or timeout is a link error" do
      module = Module.compile!(@two_wat)

      for spec <- [{:process, self(), timeout: -1}, {:process, self(), timeout: :soon}] do
        assert {:error, %Error{kind: :link, message: message}} =
                 Instance.new(module, %{"env" => %{"f" => {:fn, [:i32], [:i32], spec}}})

        assert message =~ "timeout"
      end

      for spec <- [fn x -> x end, :not_a_handler, {:process}] do
        assert {:error, %Error{kind: :link, message: message}} =
                 Instance.new(module, %{"env" => %{"f" => {:fn, [:i32], [:i32], spec}}})

        assert message =~ "handler"
      end
    end
  end

  describe "a failing handler makes the guest trap and the instance stays usable" do
    @fail_wat ~S[(module
      (import "env" "one" (func $one (param i32) (result i32)))
      (import "env" "two" (func $two (result i32 i64)))
      (import "env" "zero" (func $zero))
      (func (export "one") (param i32) (result i32) local.get 0 call $one)
      (func (export "two") (result i32 i64) call $two)
      (func (export "zero") call $zero))]

    setup do
      behave = fn name, default ->
        case Process.get({:behaviour, name}, :ok) do
          :ok -> default
          :raise -> raise ArgumentError, "bad things in #{name}"
          :throw -> throw({:ball, name})
          :exit -> exit({:gone, name})
          {:answer, value} -> value
        end
      end

      imports = %{
        "env" => %{
          "one" => {:fn, [:i32], [:i32], fn _c, x -> behave.("one", x + 1) end},
          "two" => {:fn, [], [:i32, :i64], fn _c -> behave.("two", [1, 2]) end},
          "zero" => {:fn, [], [], fn _c -> behave.("zero", :ok) end}
        }
      }

      %{instance: instance!(@fail_wat, imports)}
    end

    # Makes `name` misbehave once, checks the trap, then checks that the
    # same import answers normally again.
    defp assert_trap(instance, name, behaviour, expected_fragments) do
      Process.put({:behaviour, name}, behaviour)
      args = if name == "one", do: [1], else: []

      assert {:error, %Error{kind: :trap, message: message}} = Instance.call(instance, name, args)

      assert message =~ "host function env.#{name}"

      for fragment <- List.wrap(expected_fragments) do
        assert message =~ fragment
      end

      Process.delete({:behaviour, name})

      expected = %{"one" => [2], "two" => [1, 2], "zero" => []}[name]
      assert {:ok, ^expected} = Instance.call(instance, name, args)
      message
    end

    test "raise", %{instance: i} do
      assert_trap(i, "one", :raise, ["raised", "ArgumentError", "bad things in one"])
      assert_trap(i, "zero", :raise, ["bad things in zero"])
    end

    test "throw", %{instance: i} do
      assert_trap(i, "one", :throw, ["threw", ~s({:ball, "one"})])
    end

    test "exit", %{instance: i} do
      assert_trap(i, "two", :exit, ["exited", ~s({:gone, "two"})])
    end

    # The answer is quoted in the message (in Erlang's term syntax when it
    # comes from the type check), so the fragments below only look for the
    # cause, not for how terms are printed.
    test "wrong number of results", %{instance: i} do
      assert_trap(i, "one", {:answer, [1, 2]}, ~r/expected 1 .*got 2/)
      assert_trap(i, "one", {:answer, []}, ~r/expected 1 .*got 0/)
      assert_trap(i, "two", {:answer, [1]}, ~r/expected 2 .*got 1/)
      assert_trap(i, "two", {:answer, [1, 2, 3]}, ~r/expected 2 .*got 3/)
      # a function without results must not answer a value
      assert_trap(i, "zero", {:answer, 5}, ~r/returned 5.*expected a list of 0/)
      assert_trap(i, "zero", {:answer, [5]}, ~r/expected 0 .*got 1/)
    end

    test "wrong type of result", %{instance: i} do
      assert_trap(i, "one", {:answer, "a string"}, ["a string", "must be i32"])
      assert_trap(i, "one", {:answer, 1.5}, "must be i32")
      assert_trap(i, "one", {:answer, 1 <<< 32}, ["4294967296", "out of range for i32"])
      assert_trap(i, "one", {:answer, -(1 <<< 31) - 1}, ["-2147483649", "out of range for i32"])

      # A bignum is described by its size, not printed.
      assert_trap(i, "two", {:answer, [1, 1 <<< 64]}, [
        "an integer of about 72 bits",
        "out of range for i64"
      ])

      assert_trap(i, "two", {:answer, [:a, 2]}, "must be i32")
    end

    test "garbage answers", %{instance: i} do
      assert_trap(i, "one", {:answer, {:ok, [1]}}, "must be i32")
      assert_trap(i, "one", {:answer, %{a: 1}}, "must be i32")
      assert_trap(i, "one", {:answer, make_ref()}, "must be i32")
      assert_trap(i, "one", {:answer, nil}, "must be i32")
      assert_trap(i, "one", {:answer, self()}, "must be i32")
      assert_trap(i, "two", {:answer, {1, 2}}, ~r/returned {1, 2}.*expected a list of 2/)
      assert_trap(i, "two", {:answer, :ok}, ~r/returned :ok.*expected a list of 2/)
      assert_trap(i, "two", {:answer, [1 | 2]}, "proper list")
      assert_trap(i, "zero", {:answer, {:error, "nope"}}, "nope")
    end

    test "the trap has a backtrace through the guest", %{instance: i} do
      Process.put({:behaviour, "one"}, :raise)
      assert {:error, %Error{kind: :trap} = error} = Instance.call(i, "one", [1])
      assert [%{module_offset: offset} | _] = error.backtrace
      assert is_integer(offset)
      Process.delete({:behaviour, "one"})
    end

    test "many failures in a row leave the instance usable", %{instance: i} do
      for n <- 1..50 do
        Process.put(
          {:behaviour, "one"},
          Enum.at([:raise, :throw, :exit, {:answer, :x}], rem(n, 4))
        )

        assert {:error, %Error{kind: :trap}} = Instance.call(i, "one", [n])
        Process.delete({:behaviour, "one"})
        assert {:ok, [r]} = Instance.call(i, "one", [n])
        assert r == n + 1
      end
    end
  end
end
