"""HTTP serving: `occamtune serve runs/ner` then `POST /predict {"texts": ["..."]}` (an entry may
be an object, for tasks whose inputs have parts such as {"question": ..., "context": ...})."""

# No `from __future__ import annotations`: FastAPI must see the request model as a class.

from pathlib import Path
from typing import Any

MAX_TEXTS = 256


def create_app(folder: str | Path) -> Any:
    """A FastAPI app around one loaded model."""
    from fastapi import FastAPI, HTTPException
    from pydantic import BaseModel

    from occamtune.inference import Predictor

    predictor = Predictor(folder)
    app = FastAPI(title="occamtune", description=f"predictions of {folder}")

    class PredictRequest(BaseModel):
        texts: list[str | dict[str, Any]]  # a text, or an object for tasks with structured inputs

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "task": predictor.task.name, "labels": predictor.labels}

    @app.post("/predict")
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
