defmodule Wasmbeam.Tag do
  @moduledoc """
  An exception tag exported by an instance (exception-handling proposal,
  engines with `features: [exceptions: true]`), from `Wasmbeam.Instance.export/2`.
  Its only use is to be imported by another instance of the same store, so
  that both throw and catch the same exceptions.
  """

  @enforce_keys [:ref]
  defstruct [:ref, :name, params: []]

  @type t :: %__MODULE__{
          ref: reference(),
          name: String.t() | nil,
          params: [Wasmbeam.Types.value_type()]
        }

  defimpl Inspect do
    def inspect(tag, _opts), do: "#Wasmbeam.Tag<#{tag.name}: (#{Enum.join(tag.params, ", ")})>"
  end
end
