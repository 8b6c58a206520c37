defmodule Mix.Wasmbeam.RunFlags do
  @moduledoc false
  # The `-W` (WebAssembly) and `-S` (WASI) flags of `mix wasmbeam.run`,
  # spelled and read as the Wasmtime CLI (48) reads them: `-W NAME[=VALUE]`
  # and `-S NAME[=VALUE]`, comma-separated or repeated; a bare name is `=y`.
  # What applies to an embedding is mapped to Wasmbeam's options; what does
  # not is refused with the reason, never ignored.

  @known_features Keyword.keys(Wasmbeam.Engine.Config.default_features())

  # Wasmtime CLI flags that Wasmbeam does not offer, with why.
  @unsupported_w %{
    "trap-on-grow-failure" =>
      "a failed memory.grow returns -1 to the guest, as Wasm says; it never traps here",
    "unknown-imports-trap" => "every import must be given (no stand-in functions are made)",
    "unknown-imports-default" => "every import must be given (no stand-in functions are made)"
  }
  @unsupported_s %{
    "cli" => "WASI CLI is always on for a program that imports it",
    "cli-exit-with-code" => "exit-with-code is always on (WASI 0.2.12)",
    "http" => "outgoing wasi:http is not offered yet",
    "preview2" => "a core module gets preview 1 and a component preview 2, always",
    "threads" => "wasi-threads is not offered",
    "nn" => "wasi-nn is not offered",
    "config" => "wasi-config is not offered",
    "keyvalue" => "wasi-keyvalue is not offered",
    "tls" => "wasi-tls is not offered"
  }

  @type w :: %{
          features: keyword(boolean()),
          fuel: non_neg_integer() | nil,
          timeout: non_neg_integer() | nil,
          memory_size: non_neg_integer() | nil,
          table_elements: non_neg_integer() | nil,
          max_wasm_stack: pos_integer() | nil
        }

  @type s :: %{inherit_env: boolean(), network: list(), ip_name_lookup: boolean()}

  @doc """
  Reads the `-W` flags.

      iex> Mix.Wasmbeam.RunFlags.wasm(["fuel=1000,timeout=2s", "max-memory-size=65536", "gc=n"])
      {:ok, %{features: [gc: false], fuel: 1000, timeout: 2000, memory_size: 65536,
              table_elements: nil, max_wasm_stack: nil}}
      iex> Mix.Wasmbeam.RunFlags.wasm(["trap-on-grow-failure"])
      {:usage, "-W trap-on-grow-failure is not supported: a failed memory.grow returns -1 to the guest, as Wasm says; it never traps here"}
  """
  @spec wasm([String.t()]) :: {:ok, w()} | {:usage, String.t()}
  def wasm(specs) do
    empty = %{
      features: [],
      fuel: nil,
      timeout: nil,
      memory_size: nil,
      table_elements: nil,
      max_wasm_stack: nil
    }

    specs
    |> pairs()
    |> Enum.reduce_while({:ok, empty}, fn {name, value}, {:ok, acc} ->
      case wasm_flag(name, value, acc) do
        {:ok, acc} -> {:cont, {:ok, acc}}
        {:usage, _} = usage -> {:halt, usage}
      end
    end)
    |> case do
      {:ok, acc} -> {:ok, %{acc | features: Enum.reverse(acc.features)}}
      usage -> usage
    end
  end

  @doc """
  Reads the `-S` flags.

      iex> Mix.Wasmbeam.RunFlags.wasi(["inherit-env", "allow-ip-name-lookup=y"])
      {:ok, %{inherit_env: true, network: [], ip_name_lookup: true}}
      iex> {:ok, %{network: grants}} = Mix.Wasmbeam.RunFlags.wasi(["inherit-network", "udp=n"])
      iex> Enum.map(grants, &elem(&1, 0)) |> Enum.uniq()
      [:connect, :listen]
  """
  @spec wasi([String.t()]) :: {:ok, s()} | {:usage, String.t()}
  def wasi(specs) do
    specs
    |> pairs()
    |> Enum.reduce_while(
      {:ok, %{inherit_env: false, network: false, ip_name_lookup: false, tcp: true, udp: true}},
      fn {name, value}, {:ok, acc} ->
        case wasi_flag(name, value, acc) do
          {:ok, acc} -> {:cont, {:ok, acc}}
          {:usage, _} = usage -> {:halt, usage}
        end
      end
    )
    |> case do
      {:ok, acc} ->
        {:ok,
         %{
           inherit_env: acc.inherit_env,
           network: network(acc),
           ip_name_lookup: acc.ip_name_lookup
         }}

      usage ->
        usage
    end
  end

  defp pairs(specs) do
    specs
    |> Enum.flat_map(&String.split(&1, ",", trim: true))
    |> Enum.map(fn spec ->
      case String.split(spec, "=", parts: 2) do
        [name] -> {name, "y"}
        [name, value] -> {name, value}
      end
    end)
  end

  defp wasm_flag("fuel", value, acc), do: with_integer("-W fuel", value, &%{acc | fuel: &1})

  defp wasm_flag("timeout", value, acc) do
    case duration_ms(value) do
      {:ok, ms} -> {:ok, %{acc | timeout: ms}}
      :error -> usage("-W timeout takes a duration (1, 2s, 100ms, 1m), got #{inspect(value)}")
    end
  end

  defp wasm_flag("max-memory-size", value, acc),
    do: with_integer("-W max-memory-size", value, &%{acc | memory_size: &1})

  defp wasm_flag("max-table-elements", value, acc),
    do: with_integer("-W max-table-elements", value, &%{acc | table_elements: &1})

  defp wasm_flag("max-wasm-stack", value, acc),
    do: with_integer("-W max-wasm-stack", value, &%{acc | max_wasm_stack: max(&1, 1)})

  defp wasm_flag(name, value, acc) do
    cond do
      reason = @unsupported_w[name] ->
        usage("-W #{name} is not supported: #{reason}")

      feature =
          Enum.find(@known_features, &(Atom.to_string(&1) == String.replace(name, "-", "_"))) ->
        with {:ok, on?} <- yes_no("-W #{name}", value),
             do: {:ok, %{acc | features: [{feature, on?} | acc.features]}}

      true ->
        usage("-W: unknown proposal #{inspect(name)}")
    end
  end

  defp wasi_flag("inherit-env", value, acc),
    do: with({:ok, on?} <- yes_no("-S inherit-env", value), do: {:ok, %{acc | inherit_env: on?}})

  defp wasi_flag("inherit-network", value, acc),
    do: with({:ok, on?} <- yes_no("-S inherit-network", value), do: {:ok, %{acc | network: on?}})

  defp wasi_flag("allow-ip-name-lookup", value, acc) do
    with {:ok, on?} <- yes_no("-S allow-ip-name-lookup", value),
         do: {:ok, %{acc | ip_name_lookup: on?}}
  end

  defp wasi_flag("tcp", value, acc),
    do: with({:ok, on?} <- yes_no("-S tcp", value), do: {:ok, %{acc | tcp: on?}})

  defp wasi_flag("udp", value, acc),
    do: with({:ok, on?} <- yes_no("-S udp", value), do: {:ok, %{acc | udp: on?}})

  defp wasi_flag(name, _value, _acc) do
    case @unsupported_s[name] do
      nil -> usage("-S: unknown WASI option #{inspect(name)}")
      reason -> usage("-S #{name} is not supported: #{reason}")
    end
  end

  # `-S inherit-network` grants every address, as in the Wasmtime CLI; `tcp`
  # and `udp` take a protocol away. Without it there is no network.
  defp network(%{network: false}), do: []

  defp network(acc) do
    everywhere = ["0.0.0.0/0", "::/0"]

    tcp =
      if acc.tcp, do: for(u <- [:connect, :listen], a <- everywhere, do: {u, a, :any}), else: []

    udp = if acc.udp, do: for(a <- everywhere, do: {:udp, a, :any}), else: []
    tcp ++ udp
  end

  defp yes_no(_flag, value) when value in ["y", "yes", "true"], do: {:ok, true}
  defp yes_no(_flag, value) when value in ["n", "no", "false"], do: {:ok, false}
  defp yes_no(flag, value), do: usage("#{flag} takes y or n, got #{inspect(value)}")

  defp with_integer(flag, value, put) do
    case Integer.parse(value) do
      {n, ""} when n >= 0 -> {:ok, put.(n)}
      _ -> usage("#{flag} takes a non-negative integer, got #{inspect(value)}")
    end
  end

  # The Wasmtime CLI's durations: a bare number is seconds.
  defp duration_ms(value) do
    case Integer.parse(value) do
      {n, ""} when n >= 0 -> {:ok, n * 1000}
      {n, "ms"} when n >= 0 -> {:ok, n}
      {n, "s"} when n >= 0 -> {:ok, n * 1000}
      {n, "m"} when n >= 0 -> {:ok, n * 60_000}
      {n, "h"} when n >= 0 -> {:ok, n * 3_600_000}
      {n, "us"} when n >= 0 -> {:ok, div(n + 999, 1000)}
      {n, "ns"} when n >= 0 -> {:ok, div(n + 999_999, 1_000_000)}
      _ -> :error
    end
  end

  defp usage(message), do: {:usage, message}
end
