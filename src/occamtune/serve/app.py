"""HTTP serving: `occamtune serve runs/ner` then `POST /predict {"texts": ["..."]}`."""

# No `from __future__ import annotations`: FastAPI must see the request model as a class.

from pathlib import Path
from typing import Any

MAX_TEXTS = 256


def create_app(folder: str | Path) -> Any:
    """A FastAPI app around one loaded model."""
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from pydantic import BaseModel

    from occamtune.inference import Predictor
    from occamtune.serve.pages import docs_html, request_error

    predictor = Predictor(folder)
    # no CDN-loaded Swagger UI (blank offline): /docs is our own page
    app = FastAPI(title="occamtune", description=f"a {predictor.task.name} model",
                  docs_url=None, redoc_url=None)

    @app.exception_handler(RequestValidationError)
    def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, body = request_error(request, exc.errors())
        return JSONResponse(body, status_code=status)

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs() -> str:
        return docs_html(app)

    class PredictRequest(BaseModel):
        texts: list[str]

    @app.get("/health", summary="the model's task and labels")
    def health() -> dict[str, Any]:
        return {"status": "ok", "task": predictor.task.name, "labels": predictor.labels}

    @app.post("/predict", summary="predictions for {\"texts\": [...]}")
    def predict(req: PredictRequest) -> dict[str, Any]:
        if not req.texts:
            raise HTTPException(422, "texts must hold at least one text")
        if len(req.texts) > MAX_TEXTS:
            raise HTTPException(413, f"at most {MAX_TEXTS} texts per request, got {len(req.texts)}")
        return {"predictions": predictor.predict(req.texts)}

    return app


def serve(folder: str | Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn

    uvicorn.run(create_app(folder), host=host, port=port)
