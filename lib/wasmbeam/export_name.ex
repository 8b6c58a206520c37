defmodule Wasmbeam.ExportName do
  @moduledoc false
  # Export names (and the names a `Wasmbeam.Caller` looks up) are UTF-8
  # strings, as the spec says; anything else cannot name an export, and the
  # native code raises on a binary that is not UTF-8. Every function that
  # takes a name checks it here, where it is given, so that a bad name is
  # the caller's `:argument` error and never reaches a process (an instance
  # process least of all) or a NIF.

  alias Wasmbeam.Error

  @doc false
  @spec check(term()) :: :ok | {:error, Error.t()}
  def check(name) when is_binary(name) do
    if String.valid?(name),
      do: :ok,
      else:
        {:error,
         Error.new(:argument, "an export name must be valid UTF-8, got: #{inspect(name)}")}
  end

  # Wasmex takes atoms; here names are strings, as in the module.
  def check(name) when is_atom(name),
    do:
      {:error,
       Error.new(
         :argument,
         "an export name must be a string, got: #{inspect(name)} (write #{inspect(Atom.to_string(name))})"
       )}

  def check(name),
    do: {:error, Error.new(:argument, "an export name must be a string, got: #{inspect(name)}")}

  @doc false
  # A name that may also be a component's `{interface, function}` (for
  # instance processes and pools, which hold either kind of instance; the
  # instance itself then checks that the form fits it).
  @spec check_any(term()) :: :ok | {:error, Error.t()}
  def check_any({interface, name}) when is_binary(interface) and is_binary(name) do
    with :ok <- check(interface), do: check(name)
  end

  def check_any(name), do: check(name)
end
