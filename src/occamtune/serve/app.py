"""HTTP serving: `occamtune serve runs/ner` then `POST /predict {"texts": ["..."]}` (an entry may
be an object, for tasks whose inputs have parts such as {"question": ..., "context": ...}).

Every request is bounded (`ServeLimits`): a body over `max_body_bytes` or more than `max_texts`
texts or `max_tokens` sub-words is refused with 413, before any model work. A text that cannot be
predicted (longer than `max_chars`, or not valid Unicode such as a lone surrogate) gets an
`{"error": ...}` in its slot; the other texts of the batch are predicted as usual.
"""

# No `from __future__ import annotations`: FastAPI must see the request model as a class.

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from occamtune.errors import ConfigError

MAX_TEXTS = 256


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask of the server.

    Args:
        max_body_bytes: size of the request body (413 above).
        max_texts: texts per request (413 above).
        max_chars: characters per text (that text gets an error; the others are predicted).
        max_tokens: sub-words over all texts of a request (413 above): bounds a request's time.
    """

    max_body_bytes: int = 1_000_000
    max_texts: int = MAX_TEXTS
    max_chars: int = 20_000
    max_tokens: int = 50_000

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"serve limit {name} must be an integer >= 1, got {value!r}")


def as_text(entry: Any) -> str:
    """The text of a request entry: itself, or the string fields of an object joined (what the
    limits count)."""
    if isinstance(entry, dict):
        return " ".join(v for v in entry.values() if isinstance(v, str))
    return entry


def text_error(text: Any, limits: ServeLimits) -> str | None:
    """Why `text` (a text or an object of texts) cannot be predicted, or None."""
    text = as_text(text)
    if len(text) > limits.max_chars:
        return f"text has {len(text)} characters, more than the limit of {limits.max_chars}"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"text is not valid Unicode: {exc.reason} at character {exc.start}"
    return None


class BodyLimit:
    """ASGI middleware: refuse a request body over `limit` bytes with 413, whether its size is
    declared (Content-Length) or only known while it streams in."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await self._refuse(scope, receive, send)
            if not message.get("more_body"):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)

    async def _refuse(self, scope: dict, receive: Any, send: Any) -> None:
        from starlette.responses import JSONResponse

        detail = f"request body larger than the limit of {self.limit} bytes"
        await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)


def create_app(folder: str | Path, limits: ServeLimits | None = None,
               decoding: dict[str, Any] | None = None) -> Any:
    """A FastAPI app around one loaded model (`decoding`: a generator's settings instead of
    its run's)."""
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from pydantic import BaseModel

    from occamtune.inference import Predictor
    from occamtune.serve.pages import docs_html, request_error

    limits = limits or ServeLimits()
    predictor = Predictor(folder, decoding)
    # no CDN-loaded Swagger UI (blank offline): /docs is our own page; the schema names the
    # task only, no path of this machine
    app = FastAPI(title="occamtune", description=f"a {predictor.task.name} model",
                  docs_url=None, redoc_url=None)
    app.add_middleware(BodyLimit, limit=limits.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, body = request_error(request, exc.errors())
        return JSONResponse(body, status_code=status)

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs() -> str:
        return docs_html(app)

    class PredictRequest(BaseModel):
        texts: list[str | dict[str, Any]]  # a text, or an object for tasks with structured inputs

    @app.get("/health", summary="the model's task and labels")
    def health() -> dict[str, Any]:
        return {"status": "ok", "task": predictor.task.name, "labels": predictor.labels}

    @app.post("/predict", summary="predictions for {\"texts\": [...]}")
    def predict(req: PredictRequest) -> dict[str, Any]:
        if not req.texts:
            raise HTTPException(422, "texts must hold at least one text")
        if len(req.texts) > limits.max_texts:
            raise HTTPException(413, f"at most {limits.max_texts} texts per request, "
                                     f"got {len(req.texts)}")
        errors = {i: e for i, t in enumerate(req.texts) if (e := text_error(t, limits))}
        good = [i for i in range(len(req.texts)) if i not in errors]
        tokens = _count_tokens(predictor.tokenizer, [as_text(req.texts[i]) for i in good])
        if tokens > limits.max_tokens:
            raise HTTPException(413, f"the texts hold {tokens} sub-words, more than the limit of "
                                     f"{limits.max_tokens} per request; send fewer or shorter texts")
        results = _predict_each(predictor, req.texts, good, errors)
        return {"predictions": [results.get(i) or {"error": errors[i]}
                                for i in range(len(req.texts))]}

    class StreamRequest(BaseModel):
        text: str

    @app.post("/stream", summary="generated text as server-sent events (generate task)")
    def stream(req: StreamRequest) -> Any:
        from fastapi.responses import StreamingResponse

        if not predictor.task.generative:
            raise HTTPException(404, f"/stream is for generated text; a {predictor.task.name} "
                                     "model answers whole at /predict")
        error = text_error(req.text, limits)
        if error:
            raise HTTPException(422, error)
        tokens = _count_tokens(predictor.tokenizer, [req.text])
        if tokens > limits.max_tokens:
            raise HTTPException(413, f"the text holds {tokens} sub-words, more than the limit "
                                     f"of {limits.max_tokens}")
        pieces = predictor.stream(req.text)

        def events() -> Any:
            written = []
            for piece in pieces:
                if piece:
                    written.append(piece)
                    yield f"data: {json.dumps({'token': piece})}\n\n"
            yield f"data: {json.dumps({'done': True, 'generated': ''.join(written).strip()})}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def _count_tokens(tokenizer: Any, texts: list[str]) -> int:
    if not texts:
        return 0
    return sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])


def _predict_each(predictor: Any, texts: list[str], good: list[int],
                  errors: dict[int, str]) -> dict[int, dict]:
    """Predictions of the texts at `good`, in one batch; when the batch fails, text by text, so
    one bad text costs only its own slot (its error goes into `errors`)."""
    if not good:
        return {}
    try:
        return dict(zip(good, predictor.predict([texts[i] for i in good])))
    except Exception as exc:  # noqa: BLE001 - isolated below, text by text
        logging.getLogger(__name__).warning("batch failed (%s); predicting text by text", exc)
    out = {}
    for i in good:
        try:
            [out[i]] = predictor.predict([texts[i]])
        except Exception as exc:  # noqa: BLE001 - reported in the text's slot
            errors[i] = f"prediction failed: {type(exc).__name__}: {exc}"
    return out


def serve(folder: str | Path, host: str = "127.0.0.1", port: int = 8000,
          limits: ServeLimits | None = None, decoding: dict[str, Any] | None = None) -> None:
    import uvicorn

    uvicorn.run(create_app(folder, limits, decoding), host=host, port=port)
