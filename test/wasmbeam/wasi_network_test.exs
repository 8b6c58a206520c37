defmodule Wasmbeam.WasiNetworkTest do
  # WASI preview-2 sockets: none unless granted, then only what is granted.
  # The guest (test/fixtures/components/net_probe) connects with
  # wasi:sockets/tcp itself; the peers are :gen_tcp servers of this test on
  # 127.0.0.1.
  use ExUnit.Case, async: true

  alias Wasmbeam.{Component, Error}
  alias Wasmbeam.Component.Instance

  setup_all do
    {:ok, probe: Component.compile_file!(Wasmbeam.ComponentFixtures.path!("net_probe"))}
  end

  # A listening socket on 127.0.0.1 and a process that answers each
  # connection: "echo:" and what it read (until the guest's message is
  # complete), then closes. Every connection is reported to the test.
  defp echo_server(answer? \\ true) do
    {:ok, listen} = :gen_tcp.listen(0, [:binary, active: false, ip: {127, 0, 0, 1}])
    {:ok, port} = :inet.port(listen)
    test = self()

    server =
      spawn_link(fn ->
        {:ok, socket} = :gen_tcp.accept(listen)
        send(test, {:connected, port})
        {:ok, data} = :gen_tcp.recv(socket, 0)
        send(test, {:received, port, data})

        if answer? do
          :ok = :gen_tcp.send(socket, "echo:" <> data)
          :gen_tcp.close(socket)
        else
          # Holds the connection open, answering nothing, until the guest
          # goes away.
          send(test, {:closed, port, :gen_tcp.recv(socket, 0)})
        end
      end)

    %{listen: listen, port: port, server: server}
  end

  defp probe(ctx, wasi, ip, port, message \\ "hi", options \\ []) do
    instance = Instance.new!(ctx.probe, %{}, wasi: wasi)
    Instance.call(instance, "send", [ip, port, message], options)
  end

  # No connection reached the listening socket (one that had would be in
  # its accept queue: the kernel completes a handshake before connect
  # returns).
  defp assert_no_connection(%{listen: listen}) do
    assert {:error, :timeout} = :gen_tcp.accept(listen, 0)
  end

  test "no network by default: the guest is refused, and nothing connects", ctx do
    peer = echo_server()

    assert {:ok, {:error, message}} = probe(ctx, [], {127, 0, 0, 1}, peer.port)
    assert message =~ "access-denied"
    refute_received {:connected, _}
    Process.unlink(peer.server)
    Process.exit(peer.server, :kill)
    assert_no_connection(peer)
  end

  test "a connect grant lets the guest reach that host and port, and no other", ctx do
    allowed = echo_server()
    denied = echo_server()
    wasi = [network: [{:connect, "127.0.0.1", allowed.port}]]

    assert {:ok, {:ok, "echo:hello"}} = probe(ctx, wasi, {127, 0, 0, 1}, allowed.port, "hello")
    assert_received {:received, port, "hello"} when port == allowed.port

    assert {:ok, {:error, message}} = probe(ctx, wasi, {127, 0, 0, 1}, denied.port)
    # Wasmtime checks the grant when the connect is carried out.
    assert message == "finish-connect: access-denied"
    Process.unlink(denied.server)
    Process.exit(denied.server, :kill)
    assert_no_connection(denied)

    # Another host on the granted port: refused too (127.0.0.2 is loopback
    # on Linux, so only the grant stops it).
    assert {:ok, {:error, "finish-connect: access-denied"}} =
             probe(ctx, wasi, {127, 0, 0, 2}, allowed.port)
  end

  test "networks in CIDR form, port ranges and :any", ctx do
    a = echo_server()
    b = echo_server()

    assert {:ok, {:ok, "echo:hi"}} =
             probe(ctx, [network: [{:connect, "127.0.0.0/8", :any}]], {127, 0, 0, 1}, a.port)

    low = min(a.port, b.port)

    assert {:ok, {:ok, "echo:hi"}} =
             probe(
               ctx,
               [network: [{:connect, {127, 0, 0, 1}, low..65_535}]],
               {127, 0, 0, 1},
               b.port
             )

    assert {:ok, {:error, "finish-connect: access-denied"}} =
             probe(ctx, [network: [{:connect, "10.0.0.0/8", :any}]], {127, 0, 0, 1}, a.port)
  end

  test "a grant of another kind (udp, listen) does not allow connecting", ctx do
    peer = echo_server()

    for grant <- [{:udp, "127.0.0.1", peer.port}, {:listen, "127.0.0.1", peer.port}] do
      assert {:ok, {:error, message}} = probe(ctx, [network: [grant]], {127, 0, 0, 1}, peer.port)
      assert message =~ "access-denied", inspect(grant)
    end
  end

  test "name lookups are refused unless granted", ctx do
    # Wasmtime answers a lookup it may not make as a permanent resolver
    # failure, before asking any resolver.
    instance = Instance.new!(ctx.probe, %{}, wasi: [])

    assert {:ok, {:error, "resolve-addresses: permanent-resolver-failure"}} =
             Instance.call(instance, "resolve", ["localhost"])

    instance = Instance.new!(ctx.probe, %{}, wasi: [ip_name_lookup: true])
    assert {:ok, {:ok, addresses}} = Instance.call(instance, "resolve", ["localhost"])
    assert "127.0.0.1" in addresses
  end

  test "a guest waiting on a socket holds no thread, and its timeout stops it", ctx do
    peer = echo_server(false)
    wasi = [network: [{:connect, "127.0.0.1", peer.port}]]
    instance = Instance.new!(ctx.probe, %{}, wasi: wasi)

    task =
      Task.async(fn ->
        Instance.call(instance, "send", [{127, 0, 0, 1}, peer.port, "wait"], timeout: 300)
      end)

    assert_receive {:received, _, "wait"}, 5_000
    # While the guest waits for an answer, its caller sits in `receive`.
    Wasmbeam.Test.Blocked.assert_blocked_in_receive(task.pid)
    assert {:error, %Error{kind: :timeout}} = Task.await(task)
    # The guest's connection is gone with it.
    assert_receive {:closed, _, {:error, :closed}}, 5_000
  end

  test "the death of the caller while its guest waits on a socket closes the connection", ctx do
    peer = echo_server(false)
    wasi = [network: [{:connect, "127.0.0.1", peer.port}]]

    {pid, ref} =
      spawn_monitor(fn ->
        instance = Instance.new!(ctx.probe, %{}, wasi: wasi)
        Instance.call(instance, "send", [{127, 0, 0, 1}, peer.port, "wait"])
      end)

    assert_receive {:received, _, "wait"}, 5_000
    Process.exit(pid, :kill)
    assert_receive {:DOWN, ^ref, :process, ^pid, :killed}
    assert_receive {:closed, _, {:error, :closed}}, 5_000

    # The VM and WASI are fine: a new guest connects.
    again = echo_server()

    assert {:ok, {:ok, "echo:hi"}} =
             probe(
               ctx,
               [network: [{:connect, "127.0.0.1", again.port}]],
               {127, 0, 0, 1},
               again.port
             )
  end

  test "a component gets no WASI without wasi: options, even in a store that has a WASI context",
       ctx do
    store = Wasmbeam.Store.new!()
    :ok = Wasmbeam.Wasi.attach(store, network: [{:connect, "0.0.0.0/0", :any}])

    assert {:error, %Error{kind: :link, message: message}} =
             Instance.new(ctx.probe, %{}, store: store)

    assert message =~ "wasi: options"
  end

  test "an IPv4-mapped IPv6 network grants the IPv4 network it maps", ctx do
    peer = echo_server()
    wasi = [network: [{:connect, "::ffff:127.0.0.0/104", :any}]]
    assert {:ok, {:ok, "echo:hi"}} = probe(ctx, wasi, {127, 0, 0, 1}, peer.port)

    assert {:ok, {native, _, _, _}} =
             Wasmbeam.Wasi.Options.to_native(network: [{:connect, "::ffff:10.0.0.0/104", 80}])

    assert native.network == [{"connect", [10, 0, 0, 0], 8, 80, 80}]
  end

  test "bad network options are :argument errors", ctx do
    for network <- [
          :all,
          [{:connect, "example.com", 80}],
          [{:connect, "127.0.0.1/33", 80}],
          [{:connect, "127.0.0.1", 70_000}],
          [{:connect, "127.0.0.1", 90..80//-1}],
          [{:connect, {300, 0, 0, 1}, 80}],
          [{:fly, "127.0.0.1", 80}],
          [{:connect, "127.0.0.1"}]
        ] do
      assert {:error, %Error{kind: :argument}} =
               Instance.new(ctx.probe, %{}, wasi: [network: network]),
             inspect(network)
    end

    assert {:error, %Error{kind: :argument}} =
             Instance.new(ctx.probe, %{}, wasi: [ip_name_lookup: :yes])
  end
end
