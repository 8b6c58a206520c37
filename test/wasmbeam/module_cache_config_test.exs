defmodule Wasmbeam.ModuleCacheConfigTest do
  # Changes the application environment, which every test can see.
  use ExUnit.Case, async: false

  alias Wasmbeam.{Instance, ModuleCache}

  setup do
    saved = Application.get_env(:wasmbeam, ModuleCache, [])
    on_exit(fn -> Application.put_env(:wasmbeam, ModuleCache, saved) end)
    %{saved: saved}
  end

  defp wat(n), do: ~s[(module (func (export "answer") (result i32) i32.const #{n}))]

  test "Wasmbeam.load/3 uses the default cache when it is enabled", %{saved: saved} do
    bytes = wat(System.unique_integer([:positive]))
    before = ModuleCache.stats()

    Application.put_env(:wasmbeam, ModuleCache, Keyword.put(saved, :enabled, false))
    {:ok, _} = Wasmbeam.load(bytes)
    assert ModuleCache.stats().compiles == before.compiles

    Application.put_env(:wasmbeam, ModuleCache, Keyword.put(saved, :enabled, true))
    {:ok, first} = Wasmbeam.load(bytes)
    {:ok, second} = Wasmbeam.load(bytes)
    assert first.module == second.module
    {:ok, [_]} = Instance.call(second, "answer", [])
    # cache: false still wins over the setting.
    {:ok, third} = Wasmbeam.load(bytes, %{}, cache: false)
    assert third.module != first.module

    now = ModuleCache.stats()
    assert now.compiles - before.compiles == 1
    assert now.memory_hits - before.memory_hits == 1
  end
end
