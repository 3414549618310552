"""The HTTP app and the Python predictor API on a tiny trained model."""

from __future__ import annotations

from pathlib import Path

import pytest

import occamtune
from occamtune.config import load_config


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model_dir) -> Path:
    fixtures = Path(__file__).resolve().parents[2] / "fixtures"
    out = tmp_path_factory.mktemp("serve") / "run"
    cfg = load_config(None, ["task=ner", f"data.path={fixtures / 'conll_tiny'}", f"model.name={tiny_model_dir}",
                             f"output={out}", "train.epochs=1", "train.batch_size=4", "data.max_length=32"])
    occamtune.train(cfg, progress=False)
    return out


def test_python_api_predicts_spans(run_dir: Path) -> None:
    predictor = occamtune.load(run_dir)
    [res] = predictor.predict(["John Smith met Mary Jones in Paris ."])
    assert len(res["words"]) == 8
    assert all(e["type"] in ("PER", "LOC", "ORG", "MISC") for e in res["entities"])


def test_http_predict_and_errors(run_dir: Path) -> None:
    from fastapi.testclient import TestClient

    from occamtune.serve.app import create_app

    client = TestClient(create_app(run_dir))
    assert client.get("/health").json()["task"] == "ner"
    got = client.post("/predict", json={"texts": ["Paris is in France .", "John met Mary ."]})
    assert got.status_code == 200 and len(got.json()["predictions"]) == 2
    assert client.post("/predict", json={"texts": []}).status_code == 422
    assert client.post("/predict", json={"nope": 1}).status_code == 422


def test_docs_page_needs_no_network_and_errors_say_what_to_send(run_dir: Path) -> None:
    from fastapi.testclient import TestClient

    from occamtune.serve.app import create_app

    client = TestClient(create_app(run_dir))
    page = client.get("/docs")
    assert page.status_code == 200 and "/predict" in page.text
    assert "http" not in page.text.replace("http://HOST:PORT", "")  # nothing fetched from a CDN
    assert str(run_dir) not in client.get("/openapi.json").text  # no path of this machine
    got = client.post("/predict", content=b'{"texts": ["x"]}', headers={"content-type": "text/plain"})
    assert got.status_code == 415 and "application/json" in got.json()["detail"]
    got = client.post("/predict", json={"text": "x"})
    assert got.status_code == 422 and "texts" in got.json()["hint"]


@pytest.fixture(scope="module")
def client(run_dir: Path):
    from fastapi.testclient import TestClient

    from occamtune.serve.app import ServeLimits, create_app

    limits = ServeLimits(max_body_bytes=20_000, max_texts=4, max_chars=500, max_tokens=300)
    return TestClient(create_app(run_dir, limits))


def test_a_lone_surrogate_fails_only_its_own_text(client) -> None:
    body = '{"texts": ["a\\ud800b", "Paris is in France ."]}'  # JSON escapes: a lone surrogate
    got = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert got.status_code == 200, got.text
    bad, good = got.json()["predictions"]
    assert "not valid Unicode" in bad["error"]
    assert good["entities"] is not None


def test_request_limits_are_413_or_a_per_text_error(client) -> None:
    huge = client.post("/predict", content=b'{"texts": ["' + b"x" * 50_000 + b'"]}',
                       headers={"content-type": "application/json"})
    assert huge.status_code == 413 and "20000 bytes" in huge.json()["detail"]

    def chunks():  # no Content-Length: the size is only known while reading
        yield b'{"texts": ["'
        for _ in range(30):
            yield b"y " * 500
        yield b'"]}'

    streamed = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    many = client.post("/predict", json={"texts": ["a"] * 5})
    assert many.status_code == 413 and "at most 4 texts" in many.json()["detail"]
    tokens = client.post("/predict", json={"texts": ["word " * 99] * 4})
    assert tokens.status_code == 413 and "sub-words" in tokens.json()["detail"]
    long = client.post("/predict", json={"texts": ["z" * 501, "John met Mary ."]}).json()
    assert "501 characters" in long["predictions"][0]["error"]
    assert "entities" in long["predictions"][1]


def test_limits_validate_and_schema_has_no_local_paths(client, run_dir) -> None:
    from occamtune.errors import ConfigError
    from occamtune.serve.app import ServeLimits

    with pytest.raises(ConfigError, match="max_texts"):
        ServeLimits(max_texts=0)
    assert str(run_dir.parent) not in client.get("/openapi.json").text
