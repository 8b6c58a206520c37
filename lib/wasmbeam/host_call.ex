defmodule Wasmbeam.HostCall do
  @moduledoc false
  # Runs the Elixir handler of a host function and turns whatever happens
  # into an answer for the guest: `{:ok, results}` or `{:error, message}`.
  # An error answer makes the guest trap with a message that names the
  # import and the cause; the instance stays usable.

  @default_process_timeout 5_000

  @doc false
  # The handler term stored in the NIF when the import is defined.
  @spec handler(String.t(), [atom()], [atom()], term()) :: {:ok, tuple()} | {:error, String.t()}
  def handler(name, params, results, fun) when is_function(fun, length(params) + 1),
    do: {:ok, {name, {:local, fun}, length(results)}}

  def handler(name, _params, results, {:process, server}),
    do: handler(name, nil, results, {:process, server, timeout: @default_process_timeout})

  def handler(name, _params, results, {:process, server, options}) when is_list(options) do
    case Wasmbeam.Timeout.check(
           Keyword.get(options, :timeout, @default_process_timeout),
           "the host call timeout"
         ) do
      {:ok, t} -> {:ok, {name, {:process, server, t}, length(results)}}
      {:error, error} -> {:error, error.message}
    end
  end

  def handler(_name, params, _results, other) when is_list(params) do
    {:error,
     "a host function handler must be a function of arity #{length(params) + 1} " <>
       "(the caller, then one argument per parameter) or {:process, server}, got: #{inspect(other)}"}
  end

  @doc false
  # The handler term of a component import: its result is the handler's
  # return value as it is (decoded against the import's WIT result type).
  @spec component_handler(String.t(), non_neg_integer(), term()) ::
          {:ok, tuple()} | {:error, String.t()}
  def component_handler(name, arity, fun) when is_function(fun, arity + 1),
    do: {:ok, {name, {:local, fun}, :component}}

  def component_handler(name, arity, handler) do
    case handler(name, List.duplicate(nil, arity), [], handler) do
      {:ok, {^name, mode, 0}} -> {:ok, {name, mode, :component}}
      {:error, _} = error -> error
    end
  end

  # A host call names its handler by registry and index. Each process that
  # runs handlers keeps a copy of the registries it has used (a few, in its
  # dictionary), so a handler is not copied out of the NIF on every call:
  # a closure that captured a large term would otherwise cost a copy of
  # that term per call. Registries only grow and their ids are never
  # reused, so a copy is stale only when it is too short.
  @cache_key :"$wasmbeam_host_handlers"
  @cache_registries 8

  @doc false
  # Runs the handler of the pending host call `id` on `store_ref` and
  # returns the answer for `Native.store_answer/3`.
  @spec answer(pos_integer(), non_neg_integer(), list(), reference(), pos_integer()) ::
          {:ok, list()} | {:error, String.t()} | {:bad_answer, String.t()}
  def answer(registry, index, args, store_ref, id) do
    caller = %Wasmbeam.Caller{store: store_ref, id: id, owner: self()}

    case :erlang.get(@cache_key) do
      %{^registry => handlers} when index < tuple_size(handlers) ->
        run(elem(handlers, index), caller, args)

      cache ->
        case Wasmbeam.Native.host_handlers(store_ref, id) do
          {:ok, handlers} ->
            cache = if is_map(cache) and map_size(cache) < @cache_registries, do: cache, else: %{}
            :erlang.put(@cache_key, Map.put(cache, registry, handlers))
            run(elem(handlers, index), caller, args)

          {:error, error} ->
            {:error, error.message}
        end
    end
  end

  @doc false
  @spec run(tuple(), Wasmbeam.Caller.t(), list()) ::
          {:ok, list()} | {:error, String.t()} | {:bad_answer, String.t()}
  def run({_name, {:local, fun}, nresults}, caller, args) do
    fun |> apply([caller | args]) |> results(nresults)
  rescue
    exception ->
      {:error,
       "the handler raised " <> Exception.format_banner(:error, exception, __STACKTRACE__)}
  catch
    :throw, value -> {:error, "the handler threw #{inspect(value)}"}
    :exit, reason -> {:error, "the handler exited: #{inspect(reason)}"}
  end

  def run({name, {:process, server, timeout}, nresults}, caller, args) do
    # The handler process is the one that may use the caller.
    caller =
      case GenServer.whereis(server) do
        pid when is_pid(pid) -> %{caller | owner: pid}
        _not_local -> caller
      end

    # At most the time the call has left (the native side then reports the
    # call as timed out, whatever came back).
    timeout = within_call(timeout, Wasmbeam.Native.store_time_left(caller.store))
    ask(server, {:wasmbeam_host_call, name, caller, args}, timeout, nresults)
  end

  defp ask(server, request, timeout, nresults) do
    server
    |> GenServer.call(request, timeout)
    |> results(nresults)
  catch
    :exit, {:timeout, _} ->
      {:error, "the handler process #{inspect(server)} did not answer within #{timeout} ms"}

    :exit, {reason, _} ->
      {:error, "the handler process #{inspect(server)} failed: #{inspect(reason)}"}
  end

  defp within_call(timeout, nil), do: timeout
  defp within_call(:infinity, left), do: left
  defp within_call(timeout, left), do: min(timeout, left)

  defp results(value, :component), do: {:ok, value}
  defp results(list, _n) when is_list(list), do: {:ok, list}
  defp results(value, 1), do: {:ok, [value]}
  defp results(value, 0) when value in [:ok, nil], do: {:ok, []}

  # Not a failure of the handler but an answer of the wrong shape: the
  # native side tells the two apart by this tag, not by the message.
  defp results(value, n),
    do: {:bad_answer, "the handler returned #{inspect(value)}, expected a list of #{n} result(s)"}
end
