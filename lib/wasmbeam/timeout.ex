defmodule Wasmbeam.Timeout do
  @moduledoc false
  # The one check of every timeout option (call `:timeout`, pools'
  # `:checkout_timeout`, host handlers' `timeout:`, `await/2`, ...): an
  # integer of milliseconds that Erlang's timers and `receive ... after`
  # accept (0..2^32-1, about 49 days), or `:infinity`. A larger value used
  # to pass the option checks and raise `:timeout_value` in the middle of
  # a call; it is now refused where it is given.

  alias Wasmbeam.Error

  @max_ms 0xFFFF_FFFF

  @doc false
  @spec max_ms() :: pos_integer()
  def max_ms, do: @max_ms

  @doc false
  # Whether `value` is a valid timeout in milliseconds (`:infinity` aside).
  defguard is_ms(value) when is_integer(value) and value >= 0 and value <= @max_ms

  @doc false
  # `{:ok, value}` for a valid timeout or `:infinity`, else an `:argument`
  # error naming `option`.
  @spec check(term(), String.t()) :: {:ok, timeout()} | {:error, Error.t()}
  def check(value, _option) when is_ms(value) or value == :infinity, do: {:ok, value}

  def check(value, option),
    do:
      {:error,
       Error.new(
         :argument,
         "#{option} must be :infinity or an integer of milliseconds in 0..#{@max_ms}, " <>
           "got: #{inspect(value)}"
       )}
end
