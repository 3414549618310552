"""The server's own help: an offline `/docs` page and request errors that say what to send.

FastAPI's `/docs` loads Swagger UI from a CDN, so it is blank on a machine without internet (the
usual place for a CPU model server); this page is plain HTML written from the app's OpenAPI
schema, with nothing to fetch.
"""

from __future__ import annotations

import html
import json
from typing import Any

EXAMPLE = {"texts": ["Angela Merkel met Emmanuel Macron in Paris ."]}


def docs_html(app: Any) -> str:
    """A self-contained page: each endpoint, its method and summary, and a curl example."""
    schema = app.openapi()
    rows = []
    for path, methods in schema.get("paths", {}).items():
        for method, op in methods.items():
            rows.append(f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}"
                        f"</code></td><td>{html.escape(op.get('summary', ''))}</td></tr>")
    curl = ("curl -s -X POST http://HOST:PORT/predict -H 'Content-Type: application/json' "
            f"-d '{json.dumps(EXAMPLE)}'")
    title = html.escape(schema.get("info", {}).get("title", "occamtune"))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:50em;margin:2em auto}}td{{padding:.3em 1em}}</style>
</head><body><h1>{title}</h1><p>{html.escape(schema.get('info', {}).get('description', ''))}</p>
<table><tr><th>method</th><th>path</th><th>what</th></tr>{''.join(rows)}</table>
<h2>Example</h2><pre>{html.escape(curl)}</pre>
<p>The machine-readable schema: <a href="/openapi.json">/openapi.json</a>.</p></body></html>"""


def request_error(request: Any, errors: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    """Status and body for a request FastAPI could not read: a missing or wrong content type
    (415) says what to send; other mistakes (422) list FastAPI's details and an example."""
    kind = request.headers.get("content-type", "")
    if request.method == "POST" and not kind.startswith("application/json"):
        return 415, {"detail": f"send JSON: Content-Type: application/json (got {kind or 'none'}) "
                               f"with a body like {json.dumps(EXAMPLE)}"}
    return 422, {"detail": errors, "hint": f"a body like {json.dumps(EXAMPLE)}"}
