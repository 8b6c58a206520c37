defmodule Wasmbeam.ComponentFixturesTest do
  # Builds each component fixture and reads its WIT back from the binary
  # with `wasm-tools component wit`: the component has the imports and
  # exports its source world says. Independent of Wasmbeam's component API.
  use ExUnit.Case, async: true

  alias Wasmbeam.ComponentFixtures

  @expected %{
    "types" => %{
      imports: [
        "wasmbeam:test/types@0.1.0",
        "wasmbeam:test/host@0.1.0",
        "greeting: func() -> string"
      ],
      exports: [
        "hello: func(name: string) -> string",
        "wasmbeam:test/echo@0.1.0",
        "wasmbeam:test/compute@0.1.0"
      ]
    },
    "resources" => %{
      imports: ["wasmbeam:test/observer@0.1.0"],
      exports: ["wasmbeam:test/counters@0.1.0"]
    },
    "host_resources" => %{
      imports: ["wasmbeam:test/blobs@0.1.0"],
      exports: ["wasmbeam:test/blob-user@0.1.0"]
    },
    "net_probe" => %{
      imports: [
        "wasi:sockets/network@0.2.12",
        "wasi:sockets/instance-network@0.2.12",
        "wasi:io/error@0.2.12",
        "wasi:io/poll@0.2.12",
        "wasi:io/streams@0.2.12",
        "wasi:sockets/tcp@0.2.12",
        "wasi:sockets/tcp-create-socket@0.2.12",
        "wasi:sockets/ip-name-lookup@0.2.12"
      ],
      exports: [
        "send: func(ip: tuple<u8, u8, u8, u8>, port: u16, message: string) -> result<string, string>",
        "resolve: func(name: string) -> result<list<string>, string>"
      ]
    },
    "spin" => %{
      imports: ["tick: func(i: u32) -> u32"],
      exports: [
        "spin-forever: func()",
        "spin-for: func(n: u64) -> u64",
        "call-host: func(n: u32) -> u64"
      ]
    }
  }

  test "every fixture folder is checked here" do
    assert ComponentFixtures.names() == @expected |> Map.keys() |> Enum.sort()
  end

  for {name, expected} <- @expected do
    @name name
    @expected_world expected

    test "#{name}: builds into a valid component with the world of its WIT" do
      path = ComponentFixtures.path!(@name)
      assert <<0, "asm", _version::binary-size(4), _::binary>> = File.read!(path)

      world = world(ComponentFixtures.wasm_tools!(["component", "wit", path]))
      assert world.imports == @expected_world.imports
      assert world.exports == @expected_world.exports
    end
  end

  test "types: the echo interface has one function per type, and so has the host's" do
    wit = ComponentFixtures.wasm_tools!(["component", "wit", ComponentFixtures.path!("types")])
    echo = interface_functions(wit, "echo")

    assert length(echo) == 31
    assert echo == interface_functions(wit, "host")
    assert "echo-wide-flags" in echo and "echo-many" in echo and "nothing" in echo

    assert interface_functions(wit, "compute") ==
             ~w(add concat sum-list make-bytes manhattan)
  end

  test "an up-to-date component is not rebuilt, and concurrent requests agree" do
    path = ComponentFixtures.path!("spin")
    %{mtime: built} = File.stat!(path, time: :posix)

    paths =
      1..4
      |> Enum.map(fn _ -> Task.async(fn -> ComponentFixtures.path!("spin") end) end)
      |> Enum.map(&Task.await(&1, 120_000))

    assert Enum.uniq(paths) == [path]
    assert File.stat!(path, time: :posix).mtime == built
  end

  test "resources: a resource of the guest's, and one of the host's" do
    wit =
      ComponentFixtures.wasm_tools!(["component", "wit", ComponentFixtures.path!("resources")])

    assert wit =~ ~r/interface counters \{\n    resource counter \{/
    assert wit =~ "peek: func(c: borrow<counter>) -> u32;"
    assert wit =~ "consume: func(c: counter) -> u32;"
    assert wit =~ "with-start: static func(id: u32, start: u32) -> counter;"

    wit =
      ComponentFixtures.wasm_tools!([
        "component",
        "wit",
        ComponentFixtures.path!("host_resources")
      ])

    assert wit =~ ~r/interface blobs \{\n    resource blob \{/
    assert wit =~ "blob-size: func(b: borrow<blob>) -> u32;"
  end

  test "wit!/1 is the source WIT" do
    assert ComponentFixtures.wit!("resources") =~ "resource counter {"
    assert ComponentFixtures.wit!("types") =~ "world types-test {"
  end

  test "an unknown fixture is an ArgumentError that lists the known ones" do
    assert_raise ArgumentError, ~r/no component fixture "nope".*types/, fn ->
      ComponentFixtures.path!("nope")
    end
  end

  # The `import` and `export` lines of the component's world, in order.
  defp world(wit) do
    [_, body] = Regex.run(~r/^world root \{\n(.*?)^\}/ms, wit)
    lines = body |> String.split("\n") |> Enum.map(&String.trim/1)

    %{
      imports: for("import " <> item <- lines, do: String.trim_trailing(item, ";")),
      exports: for("export " <> item <- lines, do: String.trim_trailing(item, ";"))
    }
  end

  # The names of the functions declared at the top of `interface name`.
  defp interface_functions(wit, name) do
    [_, body] = Regex.run(~r/^  interface #{name} \{\n(.*?)^  \}/ms, wit)

    for line <- String.split(body, "\n"),
        [_, function] <- [Regex.run(~r/^    ([a-z0-9-]+): func\(/, line)],
        do: function
  end
end
