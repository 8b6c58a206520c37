# Every test here runs twice: on the WASI preview-1 program
# (test/fixtures/wasi/wasi_tool.c, a core module), and on the same program
# made a WASI preview-2 command component with Wasmtime's preview-1 adapter.
# What differs between the two is named where it is tested: a component
# command starts at `wasi:cli/run`'s `run`, and the adapter reports any
# non-zero exit status as 1 (as `wasmtime run` of such a component does).
for kind <- [:core, :component] do
  defmodule Module.concat(Wasmbeam.WasiTest, Macro.camelize(to_string(kind))) do
    use ExUnit.Case, async: true

    alias Wasmbeam.{Component, Engine, Error, Instance, Wasi}
    alias Wasmbeam.Wasi.Pipe
    alias Wasmbeam.Test.WasiFixtures

    @kind kind
    @moduletag wasi: kind

    setup_all do
      {:ok, tool: compile_tool(Engine.default())}
    end

    defp compile_tool(engine) do
      case @kind do
        :core -> Wasmbeam.Module.compile_file!(engine, WasiFixtures.path!("wasi_tool"))
        :component -> Component.compile_file!(engine, WasiFixtures.component_path!("wasi_tool"))
      end
    end

    # Where the command starts, and what that call returns on success.
    defp entry(%{tool: %Component{} = tool}) do
      [{interface, _}] = Component.exports(tool)
      {interface, "run"}
    end

    defp entry(_ctx), do: "_start"

    defp started, do: if(@kind == :core, do: {:ok, []}, else: {:ok, :ok})

    # A non-zero exit status as the program reports it.
    defp status(code), do: if(@kind == :core, do: code, else: min(code, 1))

    defp run(ctx, args, options \\ []),
      do: Wasi.run(ctx.tool, Keyword.put_new(options, :args, args))

    describe "arguments and environment" do
      test "the program gets its name and arguments, nothing more", ctx do
        assert {:ok, %{exit_code: 0, stdout: out}} =
                 run(ctx, ["args", "a b", "ü"], program_name: "tool")

        assert out == "tool\nargs\na b\nü\n"
      end

      test "no environment unless given", ctx do
        assert {:ok, %{stdout: ""}} = run(ctx, ["env"])

        assert {:ok, %{stdout: "A=1\nB=two words\n"}} =
                 run(ctx, ["env"], env: %{"B" => "two words", "A" => "1"})
      end

      test "inherit_env passes only the named variables of the BEAM", ctx do
        System.put_env("WASMBEAM_TEST_VISIBLE", "yes")
        System.put_env("WASMBEAM_TEST_HIDDEN", "no")

        assert {:ok, %{stdout: "WASMBEAM_TEST_VISIBLE=yes\n"}} =
                 run(ctx, ["env"], inherit_env: ["WASMBEAM_TEST_VISIBLE"])
      end
    end

    describe "stdio" do
      test "stdin from a binary, stdout as any bytes", ctx do
        bytes = :crypto.strong_rand_bytes(10_000) <> <<0, 255, 128>>
        assert {:ok, %{exit_code: 0, stdout: ^bytes}} = run(ctx, ["echo"], stdin: bytes)

        all = for i <- 0..255, into: <<>>, do: <<i>>
        assert {:ok, %{stdout: ^all}} = run(ctx, ["bytes"])
      end

      test "stdin is closed by default", ctx do
        assert {:ok, %{exit_code: 0, stdout: ""}} = run(ctx, ["echo"])
      end

      test "stderr is captured apart from stdout", ctx do
        assert {:ok, %{stdout: "", stderr: "oops"}} = run(ctx, ["stderr", "oops"])
      end

      test "discarded output is nil in the result", ctx do
        assert {:ok, %{stdout: nil, stderr: "x"}} = run(ctx, ["stderr", "x"], stdout: :discard)
        assert {:ok, %{stdout: "", stderr: nil}} = run(ctx, ["stderr", "x"], stderr: :discard)
      end

      test "streamed output arrives as messages, in order, before run/2 returns", ctx do
        input = :binary.copy("0123456789", 50_000)

        assert {:ok, %{exit_code: 0, stdout: nil}} =
                 run(ctx, ["echo"], stdin: input, stdout: {:stream, self(), :job1})

        assert collect(:job1, :stdout) == input
      end

      test "writing past the capture limit traps and names the stream", ctx do
        assert {:error, %Error{kind: :trap, message: message}} =
                 run(ctx, ["bytes"], stdout: {:capture, 100})

        assert message =~ "stdout"
        assert message =~ "100 bytes"
      end

      test "a pipe written while the program runs; the waiting guest holds no thread", ctx do
        pipe = Pipe.new()
        parent = self()

        task =
          Task.async(fn -> run(ctx, ["echo"], stdin: pipe, stdout: {:stream, parent, :p}) end)

        Wasmbeam.Test.Blocked.assert_blocked_in_receive(task.pid)
        :ok = Pipe.write(pipe, "first ")
        assert_receive {:wasmbeam_output, :p, :stdout, "first "}, 5_000
        Wasmbeam.Test.Blocked.assert_blocked_in_receive(task.pid)
        :ok = Pipe.write(pipe, ["second", ?\n])
        :ok = Pipe.close(pipe)
        assert {:ok, %{exit_code: 0}} = Task.await(task)
        assert collect(:p, :stdout) == "second\n"
      end
    end

    describe "exit status" do
      test "a non-zero status is a result, and output before exit is kept", ctx do
        assert {:ok, %{exit_code: 0}} = run(ctx, ["exit", "0"])
        assert {:ok, %{exit_code: code}} = run(ctx, ["exit", "7"])
        assert code == status(7)
        assert {:ok, %{exit_code: code, stderr: "usage" <> _}} = run(ctx, [])
        assert code == status(2)
      end

      test "proc_exit through Instance.call is an :exit error with the status", ctx do
        instance = Instance.new!(ctx.tool, %{}, wasi: [args: ["exit", "5"]])

        assert {:error, %Error{kind: :exit, exit_code: code}} =
                 Instance.call(instance, entry(ctx), [])

        assert code == status(5)
      end

      test "a trap is an error", ctx do
        assert {:error, %Error{kind: :trap, trap: :unreachable}} = run(ctx, ["trap"])
      end
    end

    describe "files" do
      setup do
        root = Wasmbeam.Test.Tmp.path("wasmbeam-wasi")
        data = Path.join(root, "data")
        secret = Path.join(root, "secret")
        File.mkdir_p!(data)
        File.mkdir_p!(secret)
        File.write!(Path.join(data, "in.txt"), "hello file")
        File.write!(Path.join(secret, "key"), "do not read")
        on_exit(fn -> File.rm_rf!(root) end)
        {:ok, root: root, data: data, secret: secret}
      end

      test "a read-only preopen can be read and listed", ctx do
        dirs = [{ctx.data, "/data"}]
        assert {:ok, %{stdout: "hello file"}} = run(ctx, ["cat", "/data/in.txt"], dirs: dirs)
        assert {:ok, %{stdout: "in.txt\n"}} = run(ctx, ["ls", "/data"], dirs: dirs)
      end

      test "a read-only preopen cannot be written, created in or deleted from", ctx do
        dirs = [{ctx.data, "/data", :read_only}]

        for args <- [
              ["write", "/data/in.txt", "changed"],
              ["write", "/data/new.txt", "x"],
              ["append", "/data/in.txt", "more"],
              ["rm", "/data/in.txt"],
              ["mkdir", "/data/sub"]
            ] do
          assert {:ok, %{exit_code: 1, stderr: "error: " <> _}} = run(ctx, args, dirs: dirs),
                 "#{inspect(args)} should have been refused"
        end

        assert File.ls!(ctx.data) == ["in.txt"]
        assert File.read!(Path.join(ctx.data, "in.txt")) == "hello file"
      end

      test "a read-write preopen can be written, created in and deleted from", ctx do
        dirs = [{ctx.data, "/data", :read_write}]
        assert {:ok, %{exit_code: 0}} = run(ctx, ["write", "/data/new.txt", "made"], dirs: dirs)
        assert {:ok, %{exit_code: 0}} = run(ctx, ["append", "/data/new.txt", "+"], dirs: dirs)
        assert File.read!(Path.join(ctx.data, "new.txt")) == "made+"
        assert {:ok, %{exit_code: 0}} = run(ctx, ["mkdir", "/data/sub"], dirs: dirs)
        assert File.dir?(Path.join(ctx.data, "sub"))
        assert {:ok, %{exit_code: 0}} = run(ctx, ["rmdir", "/data/sub"], dirs: dirs)
        assert {:ok, %{exit_code: 0}} = run(ctx, ["rm", "/data/in.txt"], dirs: dirs)
        assert File.ls!(ctx.data) == ["new.txt"]
      end

      test "nothing outside the preopens is reachable", ctx do
        dirs = [{ctx.data, "/data", :read_write}]
        escapes = ["/data/../secret/key", "../secret/key", ctx.secret <> "/key", "/etc/passwd"]

        for path <- escapes do
          assert {:ok, %{exit_code: 1, stdout: ""}} = run(ctx, ["cat", path], dirs: dirs),
                 "#{path} should not be readable"
        end

        assert {:ok, %{exit_code: 1}} = run(ctx, ["cat", "/data/in.txt"])
      end

      test "a symlink that points out of a preopen is refused", ctx do
        File.ln_s!(Path.join(ctx.secret, "key"), Path.join(ctx.data, "link"))
        File.ln_s!(ctx.secret, Path.join(ctx.data, "dirlink"))
        dirs = [{ctx.data, "/data", :read_write}]

        assert {:ok, %{exit_code: 1, stdout: ""}} = run(ctx, ["cat", "/data/link"], dirs: dirs)

        assert {:ok, %{exit_code: 1}} =
                 run(ctx, ["write", "/data/dirlink/planted", "x"], dirs: dirs)

        assert File.ls!(ctx.secret) == ["key"]
      end
    end

    describe "clocks and randomness" do
      test "deterministic clocks give the same times on every run", ctx do
        assert {:ok, %{stdout: first}} = run(ctx, ["clock"], deterministic: true)
        assert {:ok, %{stdout: ^first}} = run(ctx, ["clock"], deterministic: true)
        [real, _mono] = first |> String.trim() |> String.split() |> Enum.map(&String.to_integer/1)
        assert real < 1_000_000_000_000

        assert {:ok, %{stdout: host}} = run(ctx, ["clock"])
        [host_real, _] = host |> String.trim() |> String.split() |> Enum.map(&String.to_integer/1)
        assert_in_delta host_real, System.os_time(:nanosecond), 60_000_000_000
      end

      test "a random seed gives the same bytes on every run; none gives fresh bytes", ctx do
        assert {:ok, %{stdout: a}} = run(ctx, ["random", "32"], random_seed: 1)
        assert {:ok, %{stdout: ^a}} = run(ctx, ["random", "32"], random_seed: 1)
        assert {:ok, %{stdout: b}} = run(ctx, ["random", "32"], random_seed: 2)
        assert a != b
        assert {:ok, %{stdout: c}} = run(ctx, ["random", "32"])
        assert {:ok, %{stdout: d}} = run(ctx, ["random", "32"])
        assert c != d
      end

      test "a sleeping guest wakes up", ctx do
        assert {:ok, %{stdout: "slept\n"}} = run(ctx, ["sleep", "20"])
      end
    end

    describe "budgets, cancellation and concurrency" do
      test "timeout stops a spinning program", ctx do
        assert {:error, %Error{kind: :timeout}} = run(ctx, ["spin"], timeout: 50)
      end

      test "timeout stops a program waiting on its stdin", ctx do
        pipe = Pipe.new()
        assert {:error, %Error{kind: :timeout}} = run(ctx, ["echo"], stdin: pipe, timeout: 50)
        assert :ok = Pipe.write(pipe, "nobody reads this")
        # The cancelled run sends its caller nothing afterwards.
        refute_receive {:wasmbeam_wake, _}, 100
      end

      test "fuel stops a spinning program" do
        engine = Engine.new!(consume_fuel: true)
        tool = compile_tool(engine)

        assert {:error, %Error{kind: :out_of_fuel}} =
                 Wasi.run(tool, args: ["spin"], fuel: 1_000_000, engine: engine)

        assert {:ok, %{exit_code: 0}} =
                 Wasi.run(tool, args: ["args"], fuel: 10_000_000, engine: engine)
      end

      test "a memory limit below what the program needs is a :limit error", ctx do
        assert {:error, %Error{kind: :limit}} = run(ctx, ["args"], memory_size: 64 * 1024)
      end

      test "the death of the caller while its guest waits on stdin cancels the run", ctx do
        pipe = Pipe.new()
        {pid, ref} = spawn_monitor(fn -> run(ctx, ["echo"], stdin: pipe) end)
        Wasmbeam.Test.Blocked.assert_blocked_in_receive(pid)
        Process.exit(pid, :kill)
        assert_receive {:DOWN, ^ref, :process, ^pid, :killed}
        # The pipe and the VM are fine; a new run works.
        assert :ok = Pipe.write(pipe, "late")
        assert {:ok, %{exit_code: 0, stdout: "x"}} = run(ctx, ["echo"], stdin: "x")
      end

      test "100 programs at once", ctx do
        results =
          1..100
          |> Task.async_stream(fn i -> run(ctx, ["echo"], stdin: "#{i}") end, max_concurrency: 100)
          |> Enum.map(fn {:ok, {:ok, %{stdout: out}}} -> out end)

        assert results == Enum.map(1..100, &to_string/1)
      end
    end

    describe "imports and instances" do
      # Preview 1 only: a core import of WASI replaced by a handler.
      if @kind == :core do
        test "an Elixir handler can replace a single WASI function", ctx do
          random = fn caller, ptr, len ->
            :ok = Wasmbeam.Caller.write(caller, ptr, :binary.copy(<<0xAB>>, len))
            0
          end

          imports = %{
            "wasi_snapshot_preview1" => %{"random_get" => {:fn, [:i32, :i32], [:i32], random}}
          }

          assert {:ok, %{stdout: "abababab\n"}} = run(ctx, ["random", "4"], imports: imports)
        end
      end

      test "linked once with wasi: true, the program runs many times, each with its options",
           ctx do
        linked = Wasmbeam.LinkedModule.new!(ctx.tool, %{}, wasi: true)

        for word <- ["one", "two", "three"] do
          assert {:ok, %{exit_code: 0, stdout: out}} =
                   Wasi.run(linked, args: ["echo"], stdin: word)

          assert out == word
        end

        assert {:ok, %{exit_code: code}} = Wasi.run(linked, args: ["exit", "3"])
        assert code == status(3)
      end

      test "a WASI module without wasi: options fails to link, saying why", ctx do
        assert {:error, %Error{kind: :link, message: message}} = Instance.new(ctx.tool)
        assert message =~ "WASI"
      end

      if @kind == :core do
        test "a reactor's _initialize runs once before new/3 returns" do
          wat = ~S[(module
          (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (global $ready (mut i32) (i32.const 0))
          (data (i32.const 16) "init\n")
          (func (export "_initialize")
            (global.set $ready (i32.add (global.get $ready) (i32.const 1)))
            (i32.store (i32.const 0) (i32.const 16))
            (i32.store (i32.const 4) (i32.const 5))
            (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
          (func (export "ready") (result i32) (global.get $ready)))]

          instance = Instance.new!(Wasmbeam.Module.compile!(wat), %{}, wasi: [])
          assert {:ok, [1]} = Instance.call(instance, "ready", [])
          assert {:ok, %{stdout: "init\n"}} = Wasi.output(instance)
        end
      end

      test "an instance process drives a guest that waits on its stdin, and stays responsive",
           ctx do
        pipe = Pipe.new()

        {:ok, server} =
          Instance.start_link(
            module: ctx.tool,
            instance_options: [wasi: [args: ["echo"], stdin: pipe]]
          )

        # The server has taken the call before it takes the info request.
        :erlang.trace(server, true, [:receive])
        entry = entry(ctx)
        task = Task.async(fn -> Instance.call(server, entry, [], timeout: 10_000) end)
        assert_receive {:trace, ^server, :receive, {:"$wasmbeam_call", _, _, ^entry, _, _}}
        :erlang.trace(server, false, [:receive])
        assert {:ok, %{running: true}} = Wasmbeam.Instance.Server.info(server)
        assert Task.yield(task, 0) == nil
        :ok = Pipe.write(pipe, "data")
        :ok = Pipe.close(pipe)
        assert Task.await(task) == started()
      end

      @tag :capture_log
      test "an instance process whose store is lost at a deadline restarts fresh at once", ctx do
        # The guest is parked in host I/O (a read of an empty pipe) when its
        # deadline passes: it cannot be stopped, so the store is lost.
        key = {:wasi_lost_store, make_ref()}

        options = [
          module: ctx.tool,
          instance_options: [wasi: [args: ["echo"], stdin: Pipe.new()]]
        ]

        {:ok, old} = Wasmbeam.InstanceSupervisor.start_instance(key, options)
        server = Wasmbeam.InstanceSupervisor.via(key)
        monitor = Process.monitor(old)

        assert {:error, %Error{kind: :timeout, message: message}} =
                 Instance.call(server, entry(ctx), [], timeout: 50)

        assert message =~ "store is lost"

        if @kind == :core do
          assert_receive {:DOWN, ^monitor, :process, ^old, {:wasmbeam_poisoned, _}}, 1_000

          assert Wasmbeam.Test.Wat.eventually(fn ->
                   new = GenServer.whereis(server)
                   is_pid(new) and new != old
                 end)

          # A fresh instance: nothing completed yet, and its store runs calls.
          assert {:ok, %{running: false, completed: 0}} = Wasmbeam.Instance.Server.info(server)
        else
          # A component's instance process instantiates it again in a new
          # store before it answers anything else: the same process goes on.
          assert {:ok, %{running: false, completed: 1}} = Wasmbeam.Instance.Server.info(server)
          assert GenServer.whereis(server) == old
        end

        assert {:error, %Error{kind: :timeout}} =
                 Instance.call(server, entry(ctx), [], timeout: 50)

        Wasmbeam.InstanceSupervisor.stop_instance(key)
      end

      test "a pool replaces an instance whose store was lost at a deadline", ctx do
        {:ok, pool} =
          Wasmbeam.Pool.start_link(
            module: ctx.tool,
            size: 1,
            instance_options: [wasi: [args: ["echo"], stdin: Pipe.new()]]
          )

        assert {:error, %Error{kind: :timeout, message: message}} =
                 Wasmbeam.Pool.call(pool, entry(ctx), [], timeout: 50)

        assert message =~ "store is lost"

        assert Wasmbeam.Test.Wat.eventually(fn ->
                 match?(
                   {:ok, %{discarded: 1, created: 2, instances: 1}},
                   Wasmbeam.Pool.stats(pool)
                 )
               end)

        # The replacement is usable (it times out again, rather than failing
        # as poisoned).
        assert {:error, %Error{kind: :timeout}} =
                 Wasmbeam.Pool.call(pool, entry(ctx), [], timeout: 50)
      end

      test "a module that is not a command is refused by run/2" do
        assert {:error, %Error{kind: :not_found, message: message}} =
                 Wasi.run(~S[(module (func (export "f")))])

        assert message =~ "_start"
      end
    end

    describe "bad options" do
      test "are :argument errors that name the option", ctx do
        cases = [
          [bogus: 1],
          [args: "not a list"],
          [args: ["nul\0byte"]],
          [env: [{"A=B", "c"}]],
          [env: :nope],
          [dirs: [{"/definitely/not/here", "/x"}]],
          [dirs: [{"/tmp", "/x", :rwx}]],
          [stdin: 42],
          [stdout: :terminal],
          [random_seed: -1],
          [deterministic: :yes],
          [inherit_env: "PATH"],
          [timeout: -5]
        ]

        for options <- cases do
          assert {:error, %Error{kind: :argument}} = run(ctx, ["args"], options),
                 "#{inspect(options)} should be refused"
        end
      end

      test "a path that is no module" do
        assert {:error, %Error{}} = Wasi.run("/no/such/file.wasm")
        assert {:error, %Error{kind: :argument}} = Wasi.run(:not_a_module)
      end

      test "a store gets one WASI context" do
        store = Wasmbeam.Store.new!()
        assert :ok = Wasi.attach(store, [])
        assert {:error, %Error{kind: :argument}} = Wasi.attach(store, [])
      end
    end

    defp collect(tag, stream, acc \\ <<>>) do
      receive do
        {:wasmbeam_output, ^tag, ^stream, data} -> collect(tag, stream, acc <> data)
      after
        0 -> acc
      end
    end
  end
end
