defmodule Wasmbeam.Error do
  @moduledoc """
  The error every Wasmbeam function returns as `{:error, %Wasmbeam.Error{}}`,
  and that the `!` variants raise.

  `kind` says what went wrong:

    * `:parse` - the bytes are neither a wasm binary nor valid WAT text
    * `:validation` - a wasm binary that is malformed or invalid; `offset`
      is the byte offset of the problem
    * `:compile` - code generation failed
    * `:deserialize` - a serialized module is foreign, corrupt or was made
      by an incompatible engine
    * `:link` - an import is missing, of the wrong kind or type, or from
      another store
    * `:trap` - the guest trapped; `trap` names the trap code
      (`:unreachable`, `:memory_out_of_bounds`, `:integer_division_by_zero`,
      `:stack_overflow`, ...) and `backtrace` lists the Wasm frames,
      innermost first, with function names where the module has them
    * `:timeout` - the call ran past its `timeout:`
    * `:out_of_fuel` - the call used up its fuel
    * `:limit` - a store limit (memory, tables, instances) was hit
    * `:arity`, `:type` - arguments of the wrong number or type
    * `:not_found` - no export of that name
    * `:argument` - any other invalid argument (options, offsets, ...)
    * `:busy` - the store was running another call: at once with
      `wait: false` (or from the process running that call), or after
      waiting the call's whole `timeout:` (see `Wasmbeam.Store`)
    * `:overloaded` - an instance process's queue or a pool's waiting
      queue is full; try again later
    * `:cancelled` - the call was cancelled (`Wasmbeam.Instance.Server.cancel/1`,
      or its instance process stopped before it ran)
    * `:down` - the instance process or pool is not running, or exited
      during the call
    * `:poisoned` - the store's state is unknown after a native failure;
      recreate the instance
    * `:panic` - a bug in Wasmbeam's native code, caught before it could
      harm the VM
    * `:exit` - a WASI program called `proc_exit` (`exit()` in C) from a
      function called with `Wasmbeam.Instance.call/4`; `exit_code` is its
      status. `Wasmbeam.Wasi.run/2` turns this into `{:ok, %{exit_code: n}}`

  ## Examples

      iex> {:error, error} = Wasmbeam.Module.compile("(module (func (export \\"f\\") (result i32) i64.const 1))")
      iex> error.kind
      :validation

  ## Inspecting

  An error inspects as its kind and message, with its trap code, exit code
  or byte offset when it has one (`#Wasmbeam.Error<timeout: the call ran
  past its timeout>`); it is still a struct with all its fields
  (`error.backtrace`, or `inspect(error, structs: false)` to see them all),
  and `Exception.message/1` adds the Wasm backtrace.

      iex> Wasmbeam.Error.new(:timeout, "the call ran past its timeout")
      #Wasmbeam.Error<timeout: the call ran past its timeout>
      iex> %Wasmbeam.Error{kind: :trap, trap: :unreachable, message: "wasm trap: unreachable"}
      #Wasmbeam.Error<trap unreachable: wasm trap: unreachable>
  """

  @kinds [
    :parse,
    :validation,
    :compile,
    :deserialize,
    :link,
    :trap,
    :timeout,
    :out_of_fuel,
    :limit,
    :arity,
    :type,
    :not_found,
    :argument,
    :busy,
    :overloaded,
    :cancelled,
    :down,
    :poisoned,
    :panic,
    :exit
  ]

  @type kind :: unquote(Enum.reduce(Enum.reverse(@kinds), &{:|, [], [&1, &2]}))

  @type frame :: %{
          func_index: non_neg_integer(),
          func_name: String.t() | nil,
          module_offset: non_neg_integer() | nil
        }

  @type t :: %__MODULE__{
          kind: kind(),
          message: String.t(),
          trap: atom() | nil,
          offset: non_neg_integer() | nil,
          backtrace: [frame()],
          exit_code: integer() | nil
        }

  defexception kind: :argument,
               message: "",
               trap: nil,
               offset: nil,
               backtrace: [],
               exit_code: nil

  @impl true
  def message(%__MODULE__{} = e) do
    head = "(#{e.kind}) #{e.message}"
    head = if e.offset, do: head <> " (at byte offset #{e.offset})", else: head

    case e.backtrace do
      [] -> head
      frames -> Enum.join([head, "wasm backtrace:" | format_frames(frames)], "\n    ")
    end
  end

  @shown_frames 12

  defp format_frames(frames) do
    {shown, rest} = Enum.split(frames, @shown_frames)
    more = if rest == [], do: [], else: ["... #{length(rest)} more frame(s)"]
    Enum.map(shown, &format_frame/1) ++ more
  end

  defp format_frame(frame) do
    name = frame.func_name || "<func #{frame.func_index}>"

    if frame.module_offset,
      do: "#{name} @ 0x#{Integer.to_string(frame.module_offset, 16)}",
      else: name
  end

  @doc false
  @spec new(kind(), String.t()) :: t()
  def new(kind, message), do: %__MODULE__{kind: kind, message: message}

  @doc false
  # Unwraps `{:ok, value}` (or passes `:ok` on) or raises the error, for
  # the `!` variants.
  @spec unwrap!({:ok, value} | :ok | {:error, t()}) :: value | :ok when value: term()
  def unwrap!({:ok, value}), do: value
  def unwrap!(:ok), do: :ok
  def unwrap!({:error, %__MODULE__{} = error}), do: raise(error)

  @doc """
  Every kind an error can have. The native code's kinds are among them
  (checked by the test suite against `Wasmbeam.Native.error_kinds/0`).

      iex> :trap in Wasmbeam.Error.kinds()
      true
  """
  @spec kinds() :: [kind()]
  def kinds, do: @kinds

  defimpl Inspect do
    def inspect(%{kind: kind, message: message} = error, _opts) do
      detail =
        cond do
          error.trap != nil -> " #{error.trap}"
          error.exit_code != nil -> " #{error.exit_code}"
          true -> ""
        end

      offset = if error.offset, do: " (at byte offset #{error.offset})", else: ""
      "#Wasmbeam.Error<#{kind}#{detail}: #{message}#{offset}>"
    end
  end
end
