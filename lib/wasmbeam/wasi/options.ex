defmodule Wasmbeam.Wasi.Options do
  @moduledoc """
  The options of a WASI context, and their checks. Nothing is granted
  unless an option grants it.

    * `:args` - the program's arguments, after its name (default `[]`)
    * `:program_name` - `argv[0]` (default `"main.wasm"`; `Wasmbeam.Wasi.run/2`
      uses the file's name when given a path)
    * `:env` - environment variables, a map or a list of `{name, value}`
      (default none)
    * `:inherit_env` - also pass the BEAM's own environment: `true`, or a
      list of the variable names to pass (default `false`); `:env` wins
    * `:dirs` - preopened directories, each `{host_path, guest_path}`
      (read-only) or `{host_path, guest_path, :read_only | :read_write}`.
      A read-only directory cannot be written, created in or deleted
      from; paths that escape a preopen (`..`, absolute paths, symlinks
      pointing out) are refused. Nothing else of the host file system is
      visible.
    * `:stdin` - `nil` (closed, the default), a binary, or a
      `Wasmbeam.Wasi.Pipe` that a process writes to while the guest runs
    * `:stdout`, `:stderr` - where the guest's output goes:
      `:capture` (the default: kept as a binary, up to 64 MiB; writing
      more traps the guest), `{:capture, max_bytes}`, `:discard`, or
      `{:stream, pid}` / `{:stream, pid, tag}` /
      `{:stream, pid, tag, max_bytes}`: the bytes written during each time
      slice are sent to `pid` as
      `{:wasmbeam_output, tag, :stdout | :stderr, binary}` (tag `nil` by
      default) while the program runs, at most `max_bytes` in all (default
      64 MiB, as for `:capture`; `:infinity` for a reader that keeps up):
      writing more traps the guest, because output the process does not
      read piles up in its mailbox (1 GiB streamed to a process that never
      read once took the VM from 83 MB to 1.1 GB). Output is bytes: any
      data, not only UTF-8.
    * `:deterministic` - `true` makes the wall and monotonic clocks start
      at zero and advance 1 ms per read, so every run sees the same times
      (default `false`: the host's clocks)
    * `:random_seed` - a non-negative integer: random bytes come from a
      generator seeded with it, the same on every run (default: the
      host's secure generator)

    * `:network` - sockets a WASI preview-2 guest (a component) may use,
      default none: a list of grants `{use, address, ports}` where `use`
      is `:connect` (open TCP connections to the address), `:listen` (bind
      and listen on that local address; accept from any peer) or `:udp`
      (send to and receive from the address); `address` is an IP address
      or network in CIDR form, as a string (`"127.0.0.1"`, `"10.0.0.0/8"`,
      `"::1"`) or a tuple (`{127, 0, 0, 1}`); `ports` is a port, a range
      (`8000..8080`) or `:any`. Anything not granted is refused to the
      guest with WASI's `access-denied` error. Host names are not
      addresses: grant the addresses they resolve to.
    * `:ip_name_lookup` - `true` lets a preview-2 guest resolve host names
      (`wasi:sockets/ip-name-lookup`, through the host's resolver); default
      `false`. Resolving grants nothing to connect to.

  WASI preview 1 (core modules) has no way to open sockets, so the
  network options only matter for components (WASI preview 2), where no
  socket is opened but what `:network` grants.

  ## Examples

      iex> {:ok, {native, _stdin, _stdout, _stderr}} =
      ...>   Wasmbeam.Wasi.Options.to_native(network: [{:connect, "127.0.0.1", 8080}])
      iex> native.network
      [{"connect", [127, 0, 0, 1], 32, 8080, 8080}]
      iex> {:error, %Wasmbeam.Error{kind: :argument}} =
      ...>   Wasmbeam.Wasi.Options.to_native(network: [{:connect, "example.com", 80}])
  """

  alias Wasmbeam.Error

  @type stdio ::
          :capture
          | {:capture, non_neg_integer()}
          | :discard
          | {:stream, pid()}
          | {:stream, pid(), term()}
          | {:stream, pid(), term(), non_neg_integer() | :infinity}
  @type t :: [
          args: [String.t()],
          program_name: String.t(),
          env: %{optional(String.t()) => String.t()} | [{String.t(), String.t()}],
          inherit_env: boolean() | [String.t()],
          dirs: [{Path.t(), String.t()} | {Path.t(), String.t(), :read_only | :read_write}],
          stdin: nil | binary() | Wasmbeam.Wasi.Pipe.t(),
          stdout: stdio(),
          stderr: stdio(),
          deterministic: boolean(),
          random_seed: non_neg_integer(),
          network: [network_grant()],
          ip_name_lookup: boolean()
        ]

  @type network_grant ::
          {:connect | :listen | :udp, String.t() | :inet.ip_address(),
           :inet.port_number() | Range.t() | :any}

  @keys [
    :args,
    :program_name,
    :env,
    :inherit_env,
    :dirs,
    :stdin,
    :stdout,
    :stderr,
    :deterministic,
    :random_seed,
    :network,
    :ip_name_lookup
  ]

  @default_capture_limit 64 * 1024 * 1024
  @default_stream_limit 64 * 1024 * 1024

  @doc false
  # Checks the options and turns them into what `store_set_wasi` takes:
  # `{native_map, stdin, stdout, stderr}`.
  @spec to_native(keyword()) :: {:ok, {map(), term(), term(), term()}} | {:error, Error.t()}
  def to_native(options) when is_list(options) do
    with :ok <- check_keys(options),
         {:ok, args} <- args(options),
         {:ok, env} <- env(options),
         {:ok, preopens} <- preopens(Keyword.get(options, :dirs, [])),
         {:ok, stdin} <- stdin(Keyword.get(options, :stdin)),
         {:ok, stdout} <- sink(Keyword.get(options, :stdout, :capture), :stdout),
         {:ok, stderr} <- sink(Keyword.get(options, :stderr, :capture), :stderr),
         {:ok, deterministic} <- boolean(options, :deterministic),
         {:ok, seed} <- seed(Keyword.get(options, :random_seed)),
         {:ok, network} <- network(Keyword.get(options, :network, [])),
         {:ok, ip_name_lookup} <- boolean(options, :ip_name_lookup) do
      native = %{
        args: args,
        env: env,
        preopens: preopens,
        deterministic: deterministic,
        random_seed: seed,
        network: network,
        ip_name_lookup: ip_name_lookup
      }

      {:ok, {native, stdin, stdout, stderr}}
    end
  end

  def to_native(other),
    do: invalid("WASI options must be a keyword list, got: #{inspect(other)}")

  defp check_keys(options) do
    cond do
      not Keyword.keyword?(options) ->
        invalid("WASI options must be a keyword list, got: #{inspect(options)}")

      (unknown = Keyword.keys(options) -- @keys) != [] ->
        invalid("unknown WASI option(s) #{inspect(unknown)}; known: #{inspect(@keys)}")

      true ->
        :ok
    end
  end

  defp args(options) do
    name = Keyword.get(options, :program_name, "main.wasm")
    args = Keyword.get(options, :args, [])

    cond do
      not text?(name) ->
        invalid(":program_name must be a string (UTF-8, no NUL bytes), got: #{inspect(name)}")

      not (is_list(args) and Enum.all?(args, &text?/1)) ->
        invalid(":args must be a list of strings (UTF-8, no NUL bytes), got: #{inspect(args)}")

      true ->
        {:ok, [name | args]}
    end
  end

  defp env(options) do
    with {:ok, inherited} <- inherited_env(Keyword.get(options, :inherit_env, false)),
         {:ok, given} <- given_env(Keyword.get(options, :env, [])) do
      {:ok, inherited |> Map.merge(given) |> Enum.sort()}
    end
  end

  defp inherited_env(false), do: {:ok, %{}}
  defp inherited_env(true), do: {:ok, System.get_env()}

  defp inherited_env(names) when is_list(names) do
    if Enum.all?(names, &is_binary/1),
      do: {:ok, Map.take(System.get_env(), names)},
      else: invalid(":inherit_env must be a boolean or a list of names, got: #{inspect(names)}")
  end

  defp inherited_env(other),
    do: invalid(":inherit_env must be a boolean or a list of names, got: #{inspect(other)}")

  defp given_env(env) when is_map(env) or is_list(env) do
    Enum.reduce_while(env, {:ok, %{}}, fn
      {k, v}, {:ok, acc} when is_binary(k) and is_binary(v) ->
        if text?(k) and text?(v) and k != "" and not String.contains?(k, "="),
          do: {:cont, {:ok, Map.put(acc, k, v)}},
          else: {:halt, invalid("invalid environment variable #{inspect({k, v})}")}

      other, _ ->
        {:halt, invalid(":env entries must be {name, value} strings, got: #{inspect(other)}")}
    end)
  end

  defp given_env(other),
    do: invalid(":env must be a map or a list of {name, value}, got: #{inspect(other)}")

  defp preopens(dirs) when is_list(dirs) do
    Enum.reduce_while(dirs, {:ok, []}, fn dir, {:ok, acc} ->
      case preopen(dir) do
        {:ok, entry} -> {:cont, {:ok, [entry | acc]}}
        error -> {:halt, error}
      end
    end)
    |> case do
      {:ok, entries} -> {:ok, Enum.reverse(entries)}
      error -> error
    end
  end

  defp preopens(other), do: invalid(":dirs must be a list, got: #{inspect(other)}")

  defp preopen({host, guest}), do: preopen({host, guest, :read_only})

  defp preopen({host, guest, access}) when access in [:read_only, :read_write] do
    cond do
      not (text?(host) and text?(guest)) ->
        invalid("a preopened directory needs string paths, got: #{inspect({host, guest})}")

      not File.exists?(host) ->
        invalid(
          "cannot preopen #{inspect(host)}: it does not exist " <>
            "(a preopened directory must exist: File.mkdir_p!/1 it first)"
        )

      not File.dir?(host) ->
        invalid("cannot preopen #{inspect(host)}: not a directory")

      true ->
        {:ok, {Path.expand(host), guest, access == :read_write}}
    end
  end

  defp preopen(other) do
    invalid(
      "a preopened directory is {host_path, guest_path} or " <>
        "{host_path, guest_path, :read_only | :read_write}, got: #{inspect(other)}"
    )
  end

  defp stdin(nil), do: {:ok, nil}
  defp stdin(data) when is_binary(data), do: {:ok, data}
  defp stdin(%Wasmbeam.Wasi.Pipe{ref: ref}), do: {:ok, ref}

  defp stdin(other),
    do: invalid(":stdin must be nil, a binary or a Wasmbeam.Wasi.Pipe, got: #{inspect(other)}")

  defp sink(:capture, _), do: {:ok, {:capture, @default_capture_limit}}

  defp sink({:capture, limit}, _) when is_integer(limit) and limit >= 0,
    do: {:ok, {:capture, limit}}

  defp sink(:discard, _), do: {:ok, :discard}
  defp sink({:stream, pid}, name), do: sink({:stream, pid, nil}, name)

  defp sink({:stream, pid, tag}, name),
    do: sink({:stream, pid, tag, @default_stream_limit}, name)

  defp sink({:stream, pid, tag, limit}, _)
       when is_pid(pid) and
              ((is_integer(limit) and limit >= 0 and limit <= 0xFFFF_FFFF_FFFF_FFFF) or
                 limit == :infinity),
       do: {:ok, {:stream, pid, tag, limit}}

  defp sink(other, name) do
    invalid(
      ":#{name} must be :capture, {:capture, max_bytes}, :discard, {:stream, pid}, " <>
        "{:stream, pid, tag} or {:stream, pid, tag, max_bytes | :infinity}, got: #{inspect(other)}"
    )
  end

  defp boolean(options, key) do
    case Keyword.get(options, key, false) do
      value when is_boolean(value) -> {:ok, value}
      other -> invalid(":#{key} must be a boolean, got: #{inspect(other)}")
    end
  end

  defp seed(nil), do: {:ok, nil}

  defp seed(n) when is_integer(n) and n >= 0 and n < 0x1_0000_0000_0000_0000,
    do: {:ok, n}

  defp seed(other),
    do: invalid(":random_seed must be an integer from 0 to 2^64-1, got: #{inspect(other)}")

  defp network(grants) when is_list(grants) do
    Enum.reduce_while(grants, {:ok, []}, fn grant, {:ok, acc} ->
      case network_grant(grant) do
        {:ok, native} -> {:cont, {:ok, [native | acc]}}
        error -> {:halt, error}
      end
    end)
    |> case do
      {:ok, natives} -> {:ok, Enum.reverse(natives)}
      error -> error
    end
  end

  defp network(other), do: invalid(":network must be a list of grants, got: #{inspect(other)}")

  defp network_grant({use, address, ports} = grant) when use in [:connect, :listen, :udp] do
    with {:ok, ip, prefix} <- network_address(address),
         {:ok, first, last} <- ports(ports) do
      {:ok, {Atom.to_string(use), ip, prefix, first, last}}
    else
      {:error, why} ->
        invalid("invalid network grant #{inspect(grant)}: #{why}")
    end
  end

  defp network_grant(other) do
    invalid(
      "a network grant is {:connect | :listen | :udp, address, ports}, got: #{inspect(other)}"
    )
  end

  defp network_address(address) when is_tuple(address) do
    case :inet.ntoa(address) do
      {:error, _} -> {:error, "#{inspect(address)} is not an IP address"}
      _text -> {:ok, ip_bytes(address), if(tuple_size(address) == 4, do: 32, else: 128)}
    end
  end

  defp network_address(address) when is_binary(address) do
    {text, prefix} =
      case String.split(address, "/", parts: 2) do
        [ip, bits] -> {ip, Integer.parse(bits)}
        [ip] -> {ip, nil}
      end

    case :inet.parse_strict_address(String.to_charlist(text)) do
      {:ok, ip} ->
        width = if tuple_size(ip) == 4, do: 32, else: 128

        case prefix do
          nil -> {:ok, ip_bytes(ip), width} |> unmapped()
          {bits, ""} when bits >= 0 and bits <= width -> {:ok, ip_bytes(ip), bits} |> unmapped()
          _ -> {:error, "the prefix length of #{address} must be 0..#{width}"}
        end

      {:error, _} ->
        {:error,
         "#{inspect(text)} is not an IP address (host names are not granted, addresses are)"}
    end
  end

  defp network_address(other), do: {:error, "#{inspect(other)} is not an IP address"}

  # An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) is the IPv4 one
  # (`10.0.0.0/8`), as the guest's addresses are compared as IPv4.
  defp unmapped({:ok, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255 | v4], bits}) when bits >= 96,
    do: {:ok, v4, bits - 96}

  defp unmapped(other), do: other

  defp ip_bytes({a, b, c, d}), do: [a, b, c, d]

  defp ip_bytes(v6) when tuple_size(v6) == 8,
    do: for(w <- Tuple.to_list(v6), b <- [div(w, 256), rem(w, 256)], do: b)

  defp ports(:any), do: {:ok, 0, 65_535}
  defp ports(port) when is_integer(port) and port in 0..65_535, do: {:ok, port, port}

  defp ports(first..last//1) when first in 0..65_535 and last in 0..65_535 and first <= last,
    do: {:ok, first, last}

  defp ports(other),
    do: {:error, "ports must be a port number, a range of them or :any, got: #{inspect(other)}"}

  defp text?(value),
    do: is_binary(value) and String.valid?(value) and not String.contains?(value, <<0>>)

  defp invalid(message), do: {:error, Error.new(:argument, message)}
end
