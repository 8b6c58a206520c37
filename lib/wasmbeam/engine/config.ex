defmodule Wasmbeam.Engine.Config do
  @moduledoc """
  How an engine compiles and runs code. Build one with `new/1`, which
  checks every option and refuses unknown ones.

  ## Options

    * `:strategy` - `:cranelift` (optimising, the default), `:winch`
      (baseline compiler: compiles much faster, runs slower; x86-64 and
      arm64 only) or `:pulley` (Wasmtime's portable interpreter)
    * `:opt_level` - Cranelift's `:none`, `:speed` (default) or `:speed_and_size`
    * `:consume_fuel` - meter execution with fuel so calls can take a
      `fuel:` budget (default `false`; costs some speed)
    * `:epoch_interruption` - time-slice guests and honour `timeout:`
      (default `true`). With `false`, a call runs to completion on the
      calling scheduler: only for trusted, short functions.
    * `:backtrace_details` - resolve trap backtraces to source lines from
      DWARF (default `false`; function names work without it)
    * `:parallel_compilation` - compile functions on several threads (default `true`)
    * `:ticker_realtime` - have the engine served by the epoch ticker
      thread that asks the OS for real-time priority (default `true`; see
      `Wasmbeam.Engine`). Without the privilege the OS refuses and the
      ticker is an ordinary thread.
    * `:max_wasm_stack` - bytes of native stack a guest may use (default 512 KiB)
    * `:async_stack_size` - the fiber stack per running call; must exceed
      `:max_wasm_stack` by at least 256 KiB (default 2 MiB)
    * `:pooling` - `true`, or a keyword list of limits, for Wasmtime's
      pooling instance allocator: memories, tables, instance state and
      fiber stacks come from slots reserved when the engine is created,
      and memories start as copy-on-write images of their data segments,
      so instantiating is a few page-table updates. Limits (defaults):
      `total_instances` (1000), `total_memories` (1000), `total_tables`
      (1000), `total_stacks` (1000, one per running call),
      `max_memory_size` (4 GiB, bytes per linear memory); the counts are at
      most 2^32-1, the size at most 2^64-1. When every slot
      is taken, instantiation fails with a `:limit` error until an
      instance is freed. Default `false`: memory is allocated per instance.
    * `:features` - keyword list of Wasm proposals; see `default_features/0`.
      The defaults are Wasmtime 48's own (the WebAssembly 3.0 set: its
      `Config` starts from wasmparser's `WASM3` features), so a module
      that runs under the Wasmtime CLI loads here too: `exceptions` (C++
      exceptions, `setjmp`/`longjmp` from clang), `gc` and
      `function_references`, `memory64`, `tail_call`, `multi_memory`,
      `relaxed_simd`, `extended_const`, with the WebAssembly 2.0 ones.
      Two differ, on purpose: `threads` is off (shared memories are for
      guests that spawn threads; Wasmbeam runs a store on one BEAM process
      at a time and has no `wasi-threads`), and `wide_arithmetic` and
      `custom_page_sizes` are off as in Wasmtime. A `:winch` engine leaves
      `relaxed_simd`, `tail_call`, `gc`, `function_references` and
      `exceptions` off unless they are given, as Winch does not implement
      them.

  ## Examples

      iex> {:ok, config} = Wasmbeam.Engine.Config.new(consume_fuel: true, features: [simd: false])
      iex> {config.consume_fuel, config.features[:simd]}
      {true, false}

      iex> Wasmbeam.Engine.Config.new(strategy: :v8)
      {:error, %Wasmbeam.Error{kind: :argument, message: "strategy must be one of [:cranelift, :winch, :pulley], got: :v8"}}
  """

  import Bitwise, only: [<<<: 2]

  @default_features [
    simd: true,
    relaxed_simd: true,
    multi_value: true,
    bulk_memory: true,
    reference_types: true,
    multi_memory: true,
    memory64: true,
    threads: false,
    tail_call: true,
    extended_const: true,
    function_references: true,
    gc: true,
    exceptions: true,
    wide_arithmetic: false,
    custom_page_sizes: false
  ]

  @type feature ::
          :simd
          | :relaxed_simd
          | :multi_value
          | :bulk_memory
          | :reference_types
          | :multi_memory
          | :memory64
          | :threads
          | :tail_call
          | :extended_const
          | :function_references
          | :gc
          | :exceptions
          | :wide_arithmetic
          | :custom_page_sizes

  @type t :: %__MODULE__{
          strategy: :cranelift | :winch | :pulley,
          opt_level: :none | :speed | :speed_and_size,
          consume_fuel: boolean(),
          epoch_interruption: boolean(),
          backtrace_details: boolean(),
          parallel_compilation: boolean(),
          ticker_realtime: boolean(),
          max_wasm_stack: pos_integer(),
          async_stack_size: pos_integer(),
          features: [{feature(), boolean()}],
          pooling: nil | pooling()
        }

  @type pooling :: %{
          total_instances: pos_integer(),
          total_memories: pos_integer(),
          total_tables: pos_integer(),
          total_stacks: pos_integer(),
          max_memory_size: pos_integer()
        }

  defstruct strategy: :cranelift,
            opt_level: :speed,
            consume_fuel: false,
            epoch_interruption: true,
            backtrace_details: false,
            parallel_compilation: true,
            ticker_realtime: true,
            max_wasm_stack: 512 * 1024,
            async_stack_size: 2 * 1024 * 1024,
            features: @default_features,
            pooling: nil

  @default_pooling %{
    total_instances: 1000,
    total_memories: 1000,
    total_tables: 1000,
    total_stacks: 1000,
    max_memory_size: 4 * 1024 * 1024 * 1024
  }

  # What the native side can hold: slot counts are 32-bit, a memory size
  # is a 64-bit byte count.
  @max_u32 0xFFFF_FFFF
  @pooling_max %{
    total_instances: @max_u32,
    total_memories: @max_u32,
    total_tables: @max_u32,
    total_stacks: @max_u32,
    max_memory_size: 0xFFFF_FFFF_FFFF_FFFF
  }

  @doc "The Wasm proposals an engine enables unless told otherwise."
  @spec default_features() :: [{feature(), boolean()}]
  def default_features, do: @default_features

  @doc "Builds and validates a configuration from options (see the module doc)."
  @spec new(keyword()) :: {:ok, t()} | {:error, Wasmbeam.Error.t()}
  def new(options \\ [])

  def new(options) when is_list(options) do
    Enum.reduce_while(options, {:ok, baseline(options)}, fn
      {key, value}, {:ok, config} ->
        case put(config, key, value) do
          {:ok, config} -> {:cont, {:ok, config}}
          {:error, message} -> {:halt, {:error, Wasmbeam.Error.new(:argument, message)}}
        end

      other, _ ->
        {:halt,
         {:error,
          Wasmbeam.Error.new(
            :argument,
            "engine options must be {key, value} pairs, got: #{inspect(other)}"
          )}}
    end)
    |> check_stacks()
  end

  def new(other),
    do:
      {:error,
       Wasmbeam.Error.new(
         :argument,
         "engine options must be a keyword list, got: #{inspect(other)}"
       )}

  # Winch does not implement every default feature: unless the caller says
  # otherwise, a Winch engine starts without them.
  @winch_unsupported [
    relaxed_simd: false,
    tail_call: false,
    gc: false,
    function_references: false,
    exceptions: false
  ]

  defp baseline(options) do
    if Keyword.keyword?(options) and options[:strategy] == :winch,
      do: %__MODULE__{features: Keyword.merge(@default_features, @winch_unsupported)},
      else: %__MODULE__{}
  end

  defp put(c, :strategy, v) when v in [:cranelift, :winch, :pulley], do: {:ok, %{c | strategy: v}}
  defp put(_, :strategy, v), do: bad(:strategy, [:cranelift, :winch, :pulley], v)

  defp put(c, :opt_level, v) when v in [:none, :speed, :speed_and_size],
    do: {:ok, %{c | opt_level: v}}

  defp put(_, :opt_level, v), do: bad(:opt_level, [:none, :speed, :speed_and_size], v)

  defp put(c, key, v)
       when key in [
              :consume_fuel,
              :epoch_interruption,
              :backtrace_details,
              :parallel_compilation,
              :ticker_realtime
            ] do
    if is_boolean(v),
      do: {:ok, Map.put(c, key, v)},
      else: {:error, "#{key} must be a boolean, got: #{inspect(v)}"}
  end

  @max_stack 1 <<< 30

  defp put(c, key, v) when key in [:max_wasm_stack, :async_stack_size] do
    if is_integer(v) and v > 0 and v <= @max_stack,
      do: {:ok, Map.put(c, key, v)},
      else:
        {:error,
         "#{key} must be a positive integer of at most #{@max_stack} (bytes), got: #{inspect(v)}"}
  end

  defp put(c, :features, features) when is_list(features) do
    Enum.reduce_while(features, {:ok, c}, fn
      {name, on}, {:ok, c} when is_boolean(on) ->
        if Keyword.has_key?(@default_features, name) do
          {:cont, {:ok, %{c | features: Keyword.put(c.features, name, on)}}}
        else
          {:halt,
           {:error,
            "unknown feature #{inspect(name)}; known: #{inspect(Keyword.keys(@default_features))}"}}
        end

      other, _ ->
        {:halt, {:error, "features must be {name, boolean} pairs, got: #{inspect(other)}"}}
    end)
  end

  defp put(_, :features, other),
    do: {:error, "features must be a keyword list, got: #{inspect(other)}"}

  defp put(c, :pooling, false), do: {:ok, %{c | pooling: nil}}
  defp put(c, :pooling, true), do: {:ok, %{c | pooling: @default_pooling}}

  defp put(c, :pooling, limits) when is_list(limits) do
    Enum.reduce_while(limits, {:ok, @default_pooling}, fn
      {key, n}, {:ok, _acc}
      when is_map_key(@pooling_max, key) and is_integer(n) and
             n > :erlang.map_get(key, @pooling_max) ->
        {:halt,
         {:error,
          "pooling limit #{key} must be at most #{Map.fetch!(@pooling_max, key)}, got: #{n}"}}

      {key, n}, {:ok, acc} when is_map_key(@default_pooling, key) and is_integer(n) and n > 0 ->
        {:cont, {:ok, Map.put(acc, key, n)}}

      other, _ ->
        {:halt,
         {:error,
          "pooling limits are positive integers for #{inspect(Map.keys(@default_pooling))}, " <>
            "got: #{inspect(other)}"}}
    end)
    |> case do
      {:ok, pooling} -> {:ok, %{c | pooling: pooling}}
      error -> error
    end
  end

  defp put(_, :pooling, other),
    do: {:error, "pooling must be a boolean or a keyword list of limits, got: #{inspect(other)}"}

  defp put(_, key, _), do: {:error, "unknown engine option #{inspect(key)}"}

  defp bad(key, allowed, v),
    do: {:error, "#{key} must be one of #{inspect(allowed)}, got: #{inspect(v)}"}

  # Host functions and Wasmtime's own frames run on the fiber stack too,
  # above the guest's share: a stack without this room overflows natively.
  @host_stack_room 256 * 1024

  defp check_stacks({:ok, %{async_stack_size: a, max_wasm_stack: m}})
       when a < m + @host_stack_room do
    {:error,
     Wasmbeam.Error.new(
       :argument,
       "async_stack_size (#{a}) must exceed max_wasm_stack (#{m}) by at least #{@host_stack_room} bytes"
     )}
  end

  defp check_stacks(result), do: result

  @doc """
  Checks a configuration that was not made by `new/1` (a struct built or
  changed by hand) as `new/1` would, and returns it normalised (a
  `:pooling` map gets the default for each limit it leaves out).

  ## Examples

      iex> {:ok, config} = Wasmbeam.Engine.Config.new()
      iex> {:error, %Wasmbeam.Error{kind: :argument}} = Wasmbeam.Engine.Config.validate(%{config | max_wasm_stack: -1})
      iex> {:ok, _} = Wasmbeam.Engine.Config.validate(config)
  """
  @spec validate(t()) :: {:ok, t()} | {:error, Wasmbeam.Error.t()}
  def validate(%__MODULE__{} = config) do
    checked =
      config
      |> Map.from_struct()
      |> Map.update!(:pooling, &pooling_option/1)
      |> Enum.to_list()
      |> new()

    with {:ok, checked} <- checked, do: {:ok, %{config | pooling: checked.pooling}}
  end

  defp pooling_option(nil), do: false
  defp pooling_option(limits) when is_map(limits), do: Map.to_list(limits)
  defp pooling_option(other), do: other

  @doc false
  # The flat map the NIF decodes.
  @spec to_native(t()) :: map()
  def to_native(%__MODULE__{} = c) do
    c
    |> Map.from_struct()
    |> Map.delete(:features)
    |> Map.merge(Map.new(c.features))
  end
end
