defmodule Wasmbeam.Native do
  @moduledoc false
  # The NIF stubs, and nothing else. Every function here is replaced by its
  # Rust implementation in native/wasmbeam when the library is loaded by
  # `Wasmbeam.Application` (see `load/0`).

  @doc false
  @spec load() :: :ok | {:error, term()}
  def load do
    path = :filename.join(:code.priv_dir(:wasmbeam), ~c"native/libwasmbeam")

    case :erlang.load_nif(path, 0) do
      :ok -> :ok
      {:error, {:reload, _}} -> :ok
      {:error, {:upgrade, _}} -> :ok
      {:error, reason} -> {:error, reason}
    end
  end

  defp err, do: :erlang.nif_error(:nif_not_loaded)

  def engine_new(_config), do: err()
  def engine_compatibility_hash(_engine), do: err()
  def engine_ticker_realtime(_engine), do: err()

  def module_compile(_engine, _bytes), do: err()
  def module_compile_start(_engine, _bytes), do: err()
  def module_validate(_engine, _bytes), do: err()
  def module_name(_module), do: err()
  def module_imports(_module), do: err()
  def module_exports(_module), do: err()
  def module_serialize(_module, _key), do: err()
  def module_deserialize(_engine, _bytes, _key), do: err()
  def module_deserialize_unsafe(_engine, _bytes), do: err()

  def component_compile(_engine, _bytes), do: err()
  def component_serialize(_component, _key), do: err()
  def component_deserialize(_engine, _bytes, _key), do: err()
  def component_describe(_component), do: err()
  def component_import_funcs(_component), do: err()
  def component_instantiate(_store, _component, _imports, _wasi, _options), do: err()
  def component_call(_instance, _store, _interface, _name, _args, _options), do: err()
  def component_call_dirty(_instance, _store, _interface, _name, _args, _options), do: err()
  def component_take_result(_store), do: err()
  def component_link(_component, _imports, _wasi), do: err()
  def component_linked_instantiate(_store, _linked, _options), do: err()
  def component_resource_drop(_resource, _store, _options), do: err()
  def component_host_states(_store), do: err()
  def component_wave_call(_instance, _text), do: err()
  def component_wave_format(_instance, _interface, _name, _value), do: err()

  def store_new(_engine, _options), do: err()
  def store_resume(_store), do: err()
  def store_fuel(_store), do: err()
  def store_time_left(_store), do: err()
  def store_unwait(_store), do: err()
  def store_usable(_store), do: err()
  def store_set_fuel(_store, _fuel), do: err()
  def store_fuel_consumed(_store), do: err()
  def store_answer(_store, _id, _answer), do: err()
  def store_answer_dirty(_store, _id, _answer), do: err()
  def store_io_timeout(_store), do: err()
  def store_set_wasi(_store, _options, _stdin, _stdout, _stderr), do: err()
  def store_wasi_output(_store), do: err()
  def caller_op(_store, _id, _op), do: err()
  def caller_op_large(_store, _id, _op), do: err()
  def error_kinds, do: err()
  def host_handlers(_store, _id), do: err()

  def instance_new(_store, _module, _imports, _options), do: err()
  def linked_new(_module, _imports), do: err()
  def linked_instantiate(_store, _linked, _options), do: err()
  def instance_call(_instance, _store, _name, _arguments, _options), do: err()
  def instance_export(_instance, _name), do: err()
  def instance_exports(_instance), do: err()

  def func_call(_func, _store, _arguments, _options), do: err()

  def memory_size(_memory), do: err()
  def memory_grow(_memory, _pages), do: err()
  def memory_read(_memory, _offset, _len), do: err()
  def memory_read_large(_memory, _offset, _len), do: err()
  def memory_write(_memory, _offset, _bytes), do: err()
  def memory_write_large(_memory, _offset, _bytes), do: err()

  def global_get(_global), do: err()
  def global_set(_global, _value), do: err()

  def table_size(_table), do: err()
  def table_get(_table, _index), do: err()

  def wasi_pipe_new, do: err()
  def wasi_pipe_write(_pipe, _data), do: err()
  def wasi_pipe_close(_pipe), do: err()
  def store_cancel(_store), do: err()
  def module_cache_entry(_engine, _bytes), do: err()
  def module_cache_entry_small(_engine, _bytes), do: err()
  def module_cache_write(_module, _key, _entry, _path), do: err()
  def module_cache_load(_engine, _key, _entry, _path), do: err()
end
