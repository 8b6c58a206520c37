defmodule MyAppWeb.PageController do
  @moduledoc """
  A page to try the untrusted plugin from a browser: a form (export, n),
  and under it the result with the guest's stdout, or the error with the
  HTTP status the API would answer. No templates library: the page is
  small enough to build as a string, every value escaped.
  """

  use Phoenix.Controller, formats: [:html]

  alias MyAppWeb.WasmResult

  def index(conn, params) do
    export = Map.get(params, "export", "squares")
    n = Map.get(params, "n", "10")

    {status, outcome} =
      if Map.has_key?(params, "export") do
        case MyApp.Sandbox.run(export, n) do
          {:ok, result, stdout} ->
            {200,
             ~s{<p class="result">#{escape(export)}(#{escape(n)}) = #{result}</p>} <>
               ~s(<pre class="stdout">#{escape(stdout)}</pre>)}

          {:error, error} ->
            status = WasmResult.status(error)

            {status,
             ~s(<p class="error">#{status} #{escape(to_string(error.kind))}: ) <>
               ~s(#{escape(Exception.message(error))}</p>)}
        end
      else
        {200, ""}
      end

    conn
    |> put_status(status)
    |> html(page(export, n, outcome))
  end

  defp page(export, n, outcome) do
    options =
      Enum.map_join(MyApp.PluginConfig.sandbox_exports(), "", fn name ->
        selected = if name == export, do: " selected", else: ""
        ~s(<option value="#{name}"#{selected}>#{name}</option>)
      end)

    """
    <!DOCTYPE html>
    <html lang="en">
    <head><meta charset="utf-8"><title>Wasmbeam sandbox</title></head>
    <body>
    <h1>Run the untrusted plugin</h1>
    <p>Each run gets a fresh instance, #{MyApp.PluginConfig.sandbox_budget()[:fuel]} fuel,
    #{MyApp.PluginConfig.sandbox_budget()[:timeout]} ms, 1 MiB of memory and 4 KiB of stdout.</p>
    <form method="get" action="/">
      <select name="export">#{options}</select>
      <input name="n" value="#{escape(n)}">
      <button type="submit">Run</button>
    </form>
    #{outcome}
    <p><a href="/api/stats">pool stats (JSON)</a></p>
    </body>
    </html>
    """
  end

  defp escape(text), do: text |> Plug.HTML.html_escape_to_iodata() |> IO.iodata_to_binary()
end
