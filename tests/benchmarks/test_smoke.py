"""Every benchmark script runs end to end on a tiny random model and the tiny fixture data, into
temporary folders (never benchmarks/results), so that none of them silently breaks.

The numbers these runs write mean nothing; the tests check that each script finishes, writes its
results with provenance, and that the docs pages render from them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import docs
from benchmarks.results_io import read_results

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
SCRIPTS = {"ablations", "artifact_bits", "candidates", "compression", "decoding", "families",
           "generation",
           "generation_shrink", "generation_speed", "gptq_layers", "mdl", "nbits", "refit",
           "seq2seq_compress", "shrink", "source_use", "tasks", "throughput", "vs_hf",
           "warm_start"}  # each has a test below
NOT_SCRIPTS = {"__init__", "docs", "hf_reference", "results_io"}
COMPRESSION_ENTRIES = ["fp32", "onnx-int8 (peer)", "quantize 4-bit",
                       "pipeline: vocab r64 + codebook + 4-bit GPTQ"]


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


class Bench:
    """Runs `python -m benchmarks.<script>` with the results folder moved to a temporary one."""

    def __init__(self, root: Path, model: Path) -> None:
        self.root, self.model = root, model
        self.results, self.work, self.data = root / "results", root / "work", root / "data"
        conll = self.data / "conll2003"
        conll.mkdir(parents=True)
        tiny = FIXTURES / "conll_tiny"  # the HF reference needs every test label in training:
        (conll / "train.txt").write_text(  # train on train + test
            (tiny / "train.txt").read_text() + "\n" + (tiny / "test.txt").read_text())
        for name in ("valid.txt", "test.txt"):
            (conll / name).write_text((tiny / name).read_text())
        (self.data / "sst2").symlink_to(FIXTURES / "sst_tiny")
        self.env = {**os.environ, "OCCAMTUNE_BENCH_RESULTS": str(self.results),
                    "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT),
                                                   os.environ.get("PYTHONPATH", "")]),
                    "OMP_NUM_THREADS": "1"}

    def run(self, script: str, *args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", f"benchmarks.{script}", *args], cwd=ROOT,
                              env=self.env, capture_output=True, text=True, timeout=900,
                              check=False)
        assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        return proc.stdout

    def results_of(self, name: str) -> dict:
        data, prov = read_results(self.results / f"{name}.json")
        assert prov and prov["date"] and "torch" in prov["versions"], f"{name}: no provenance"
        assert (self.results / f"{name}.md").is_file()
        return data

    @property
    def base(self) -> Path:
        return self.work / "occamtune-limit2"  # vs_hf.py's occamtune run of the NER task

    @property
    def record(self) -> Path:
        return self.work / "ner-occamtune-limit2.json"


@pytest.fixture(scope="module")
def bench(tmp_path_factory, tiny_model_dir) -> Bench:
    """The fine-tuned run every later benchmark starts from: vs_hf.py's NER comparison (2 steps)."""
    before = _digest(ROOT / "benchmarks" / "results")
    b = Bench(tmp_path_factory.mktemp("bench"), tiny_model_dir)
    b.run("vs_hf", "--task", "ner", "--data-root", str(b.data), "--model", str(b.model), "--limit", "2",
          "--epochs", "1", "--workdir", str(b.work))
    yield b
    assert _digest(ROOT / "benchmarks" / "results") == before, "a smoke run wrote benchmarks/results"


@pytest.fixture(scope="module")
def compressed(bench: Bench) -> Bench:
    bench.run("compression", "--base", str(bench.base), "--only", *COMPRESSION_ENTRIES,
              "--epochs", "0.1", "--threads", "1", "--n-speed", "8",
              "--workdir", str(bench.work / "compression"))
    return bench


def test_every_benchmark_script_has_a_smoke_test() -> None:
    modules = {p.stem for p in (ROOT / "benchmarks").glob("*.py")} - NOT_SCRIPTS
    assert modules == SCRIPTS, f"benchmark scripts without a smoke test: {modules - SCRIPTS}"


def test_vs_hf_ner(bench: Bench) -> None:
    data = bench.results_of("ner_vs_hf.limit2")
    assert data["limit_steps"] == 2 and data["model"] == str(bench.model)


def test_vs_hf_classify(bench: Bench) -> None:
    bench.run("vs_hf", "--task", "classify", "--data-root", str(bench.data), "--model",
              str(bench.model), "--limit", "2", "--epochs", "1", "--workdir", str(bench.work))
    assert "occamtune_test_accuracy" in bench.results_of("sst2_vs_hf.limit2")


def test_throughput(bench: Bench) -> None:
    bench.run("throughput", "--task", "ner", "--steps", "2", "--rounds", "1", "--data",
              str(bench.data), "--model", str(bench.model), "--workdir",
              str(bench.work / "throughput"))
    assert bench.results_of("throughput_ner")["ratio"] > 0


def test_ablations(bench: Bench) -> None:
    bench.run("ablations", "--record", str(bench.record), "--workdir", str(bench.work),
              "--data", str(bench.data / "conll2003"),
              "--set", f"model.name={bench.model}", "train.epochs=1", "train.max_steps=2")
    assert len(bench.results_of("ablations")) == 4


def test_compression(compressed: Bench) -> None:
    entries = compressed.results_of("compression")["entries"]
    assert [e["name"] for e in entries] == COMPRESSION_ENTRIES
    assert all(e["provenance"]["date"] for e in entries)


def test_artifact_bits(compressed: Bench) -> None:
    folder = (compressed.work / "compression" / "compressed"
              / COMPRESSION_ENTRIES[-1].replace(" ", "_").replace(":", ""))
    compressed.run("artifact_bits", str(folder))
    assert compressed.results_of("artifact_bits")["artifact_bytes"] > 0


def test_nbits(compressed: Bench) -> None:
    folder = compressed.work / "compression" / "compressed" / "quantize_4-bit"
    compressed.run("nbits", "--base", str(compressed.base), "--artifact", str(folder),
                   "--n-speed", "8", "--rounds", "1", "--workdir", str(compressed.work / "nbits"))
    rows = {r["name"]: r for r in compressed.results_of("nbits")["rows"]}
    assert list(rows) == ["fp32 (torch)", "artifact (torch)", "ONNX int8", "ONNX int4",
                          "ONNX int4, int8 compute", "ONNX int4 on int8 kernels", "ONNX int8, zstd",
                          "ONNX int4 on int8 kernels, zstd"]
    assert rows["ONNX int4"]["bytes"] < rows["ONNX int4 on int8 kernels"]["bytes"] \
        < rows["ONNX int8"]["bytes"]
    assert rows["ONNX int4"]["test_metric"] == rows["artifact (torch)"]["test_metric"]
    for name in ("ONNX int8", "ONNX int4 on int8 kernels"):  # the same graph, fewer bytes
        assert rows[f"{name}, zstd"]["bytes"] < rows[name]["bytes"]
        assert rows[f"{name}, zstd"]["test_metric"] == rows[name]["test_metric"]
    assert 0 < compressed.results_of("nbits")["fp32_zstd_bytes"] < rows["fp32 (torch)"]["bytes"]


def test_gptq_layers(bench: Bench) -> None:
    bench.run("gptq_layers", str(bench.base), "--rounds", "1", "--threads", "1")
    row = bench.results_of("gptq_layers")["runs"][bench.base.name]
    assert row["codes_agree"] > 0.99 and row["weights"] > 0
    assert row["kept_s"] > 0 and row["pass_s"] > 0


def test_candidates(bench: Bench) -> None:
    bench.run("candidates", "--base", str(bench.base), "--only", "vocab r32 + codebook d4 + 4-bit",
              "--threads", "1", "--workdir", str(bench.work / "candidates"))
    assert list(bench.results_of("candidates")) == ["vocab r32 + codebook d4 + 4-bit"]


def test_refit(bench: Bench) -> None:
    bench.run("refit", "--base", str(bench.base), "--threads", "1")
    assert bench.results_of("refit")["rows"]


def test_mdl(bench: Bench) -> None:
    bench.run("mdl", "--data", str(bench.data), "--model", str(bench.model), "--sentences", "20",
              "--workdir", str(bench.work / "mdl"))
    assert len(bench.results_of("mdl")["rows"]) == 4


def test_shrink(bench: Bench) -> None:
    bench.run("shrink", "--base", str(bench.base), "--finetune-record", str(bench.record),
              "--budget-factor", "50", "--max-drop", "100", "--threads", "1", "--output", str(bench.work / "shrink"),
              "--space", "distill_layers=0", "heads=0.0", "ffn=0.0", "sparsity=0.0",
              "lowrank_energy=0.0", "vocab_trim=false", "codebook=false", "bits=8")
    assert bench.results_of("shrink")["chosen_bytes"]


def test_shrink_for_size_and_speed(bench: Bench) -> None:
    bench.run("shrink", "--base", str(bench.base), "--finetune-record", str(bench.record),
              "--budget-factor", "50", "--max-drop", "100", "--threads", "1", "--workers", "2",
              "--output", str(bench.work / "shrink-both"), "--objective", "both",
              "--name", "shrink_both", "--space", "distill_layers=0", "heads=0.0", "ffn=0.0",
              "sparsity=0.0", "lowrank_energy=0.0", "vocab_trim=false", "codebook=false", "bits=8,4")
    got = bench.results_of("shrink_both")
    assert got["runtime"] == "onnx" and got["objective"] == "both" and got["latency_ratio"] > 0
    assert (bench.work / "shrink-both" / "chosen-onnx" / "model.onnx").is_file()


def test_tasks(bench: Bench) -> None:
    import json

    from tests.fixtures.task_data import squad_json, write_relations

    rel, qa = bench.data / "semeval2010_task8", bench.data / "xquad_en"
    rel.mkdir()
    qa.mkdir()
    for name, n, seed in (("train.tsv", 30, 1), ("test.tsv", 10, 2)):
        write_relations(rel, name, n, seed)
    for name, n, seed in (("train.json", 10, 1), ("test.json", 4, 2)):
        (qa / name).write_text(json.dumps(squad_json(n, seed)))
    bench.run("tasks", "--data", str(bench.data), "--model", str(bench.model), "--limit", "2",
              "--epochs", "1", "--workdir", str(bench.work / "tasks"), "--qa-length", "96")
    data = bench.results_of("tasks")
    assert set(data["tasks"]) == {"relation", "qa"} and data["slice"]
    assert {"macro_f1", "accuracy"} <= set(data["tasks"]["relation"]["hf"])
    assert {"f1", "exact_match"} <= set(data["tasks"]["qa"]["occamtune"])
    assert {t: s["batch_size"] for t, s in data["settings"].items()} == {"relation": 32, "qa": 12}


def _scitldr_like(folder: Path) -> Path:
    """SciTLDR-A's form (sources and targets as lists of texts), 12 / 4 / 4 examples."""
    import json
    import random

    words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "big", "red", "house"]
    rng = random.Random(0)
    folder.mkdir(parents=True)
    for name, n in (("train", 12), ("dev", 4), ("test", 4)):
        with (folder / f"{name}.jsonl").open("w") as fh:
            for _ in range(n):
                source = [" ".join(rng.choices(words, k=6)) + "." for _ in range(2)]
                targets = [" ".join(source[0].split()[:3]) + ".", "a second reference."]
                fh.write(json.dumps({"source": source, "target": targets[:1 + (name != "train")]})
                         + "\n")
    return folder


def test_warm_start(tmp_path: Path, tiny_model_dir: Path) -> None:
    """A tiny BERT warm-started as both halves, against a tiny Llama cut to the same size."""
    import math

    from tests.fixtures.tiny_decoders import tiny_llama_dir

    llama = tiny_llama_dir(tmp_path / "tiny-llama", tied=True)
    b = Bench(tmp_path, tiny_model_dir)
    _scitldr_like(b.data / "scitldr_a")
    b.run("warm_start", "--data-root", str(b.data), "--encoder", str(tiny_model_dir),
          "--decoder", str(llama), "--limit", "2", "--max-length", "128",
          "--workdir", str(b.work / "warm_start"))
    data = b.results_of("warm_start")
    sides = data["sides"]
    assert list(sides)[:2] == ["minilm2minilm", "minilm-share"] and len(sides) == 3
    assert sides["minilm2minilm"]["architecture"] == "EncoderDecoderModel"
    assert sides["minilm-share"]["parameters"] < sides["minilm2minilm"]["parameters"]
    assert all(math.isfinite(s["rougeL"]) and s["train_examples"] == 12 for s in sides.values())
    assert all(0 < s["distinct"] <= 100 and s["source_gain"] < 100 for s in sides.values())
    assert data["decoder_parameters"] == list(sides.values())[2]["parameters"]
    names = list(sides)  # each pair of sides on the same test examples
    assert list(data["paired"]) == [f"{a} - {b}" for i, a in enumerate(names) for b in names[i + 1:]]
    for gaps in data["paired"].values():
        low, high = gaps["rougeL"]["ci95"]
        assert low <= gaps["rougeL"]["diff"] <= high and 0 <= gaps["bleu"]["p_value"] <= 1
    # the BERT2BERT side compressed: both halves pruned, its decoder cut, its vocabulary
    # trimmed; each artifact and its int8 export scored on dev and test
    pipelines = ["distill(layers=1), structured(heads=0.5, ffn=0.5, epochs=0), vocab(rank=4)"]
    b.run("seq2seq_compress", "--base", str(b.work / "warm_start" / "minilm2minilm"),
          "--pipeline", *pipelines, "--onnx-int8", "--workdir", str(b.work / "seq2seq"))
    rows = b.results_of("seq2seq_compress")["rows"]
    assert [r["pipeline"] for r in rows] == ["fine-tuned float32", *pipelines,
                                             "fine-tuned float32, ONNX int8",
                                             f"{pipelines[0]}, ONNX int8"]
    assert rows[1]["bytes"] < rows[0]["bytes"] and rows[3]["bytes"] < rows[2]["bytes"]
    assert all(0 < r["test"]["distinct"] <= 100 and math.isfinite(r["dev"]["rougeL"]) for r in rows)
    assert all(math.isfinite(r["test"]["source_gain"]) for r in rows)  # ONNX rows too
    assert "vs_fp32" not in rows[0]["test"]  # every other row against it, on the same examples
    for r in rows[1:]:
        low, high = r["test"]["vs_fp32"]["rougeL"]["ci95"]
        assert low <= r["test"]["vs_fp32"]["rougeL"]["diff"] <= high
    # its tokens/s: the run and the artifact in torch, the artifact's int8 export in ONNX Runtime
    artifact = rows[1]["folder"]
    b.run("generation_speed", str(b.work / "warm_start" / "minilm2minilm"), "--artifact", artifact,
          "--artifact-onnx", "int8", "--onnx", "--gguf", "--data",
          str(b.data / "scitldr_a" / "test.jsonl"), "--prompts", "3", "--new-tokens", "3",
          "--batch", "2", "--rounds", "1", "--workdir", str(b.work / "speed"), "--profile")
    record = b.results_of("generation_speed")
    speed = record["sides"]
    name = Path(artifact).name
    # where the ONNX side's time goes: its three graphs, each kernel time within the wall time
    prof = record["profile"][f"onnx int8 {name}"]
    assert sorted(prof["graphs"]) == ["model.cross.onnx", "model.encoder.onnx", "model.onnx"]
    kernels = sum(g["kernel_s"] for g in prof["graphs"].values())
    assert 0 < kernels < prof["wall_s"] and prof["outside"] == pytest.approx(1 - kernels / prof["wall_s"])
    assert all(sum(g["ops"].values()) == pytest.approx(1) for g in prof["graphs"].values())
    assert not list((b.work / "speed" / "profile").glob("*.json"))  # the traces read, then removed
    assert list(speed) == ["torch fp32", f"torch {name}", f"onnx int8 {name}"]
    assert speed["torch fp32"]["agree"] == 1.0 and 0 <= speed[f"onnx int8 {name}"]["agree"] <= 1
    assert speed[f"onnx int8 {name}"]["bytes"] > 0  # tiny models: the graphs outweigh the weights
    assert all(row["tokens_per_s"] > 0 for side in speed.values() for row in side["batches"].values())
    # whether the run reads its source: its references' cost after their own and others' sources
    b.run("source_use", str(b.work / "warm_start" / "minilm2minilm"), "--n", "3")
    use = b.results_of("source_use")["rows"][0]
    for split in ("dev", "test"):
        assert use[split]["n"] == 3 and use[split]["bits"] > 0 and use[split]["rotated_bits"] > 0
        assert use[split]["gain"] == pytest.approx(100 * (1 - use[split]["bits"] / use[split]["rotated_bits"]))
    assert use["dev"]["distinct"] is None and 0 < use["test"]["distinct"] <= 100  # eval_test.json
    # decoding settings given at inference, on two sides: greedy is what the runs scored
    runs = [b.work / "warm_start" / name for name in (names[0], names[2])]
    b.run("decoding", *map(str, runs), "--setting", "greedy:num_beams=1",
          "--setting", "beams:num_beams=2,no_repeat_ngram_size=2")
    decoded = b.results_of("decoding")["runs"]
    assert list(decoded) == [names[0], names[2]]
    for name, record in decoded.items():
        greedy, beams = record["settings"]["greedy"], record["settings"]["beams"]
        assert greedy["test"]["rougeL"] == pytest.approx(sides[name]["rougeL"])
        assert beams["decoding"] == {"num_beams": "2", "no_repeat_ngram_size": "2"}
        low, high = beams["vs_first"]["rougeL"]["ci95"]
        assert low <= beams["vs_first"]["rougeL"]["diff"] <= high
        assert record["chosen_on_dev"] in ("greedy", "beams")
        assert all(0 <= r[split]["repeated"] <= 100 for r in (greedy, beams) for split in ("dev", "test"))
    # the shrink search on the BERT2BERT side: no GGUF anchor, the codebook left out
    b.run("generation_shrink", "--base", str(runs[0]), "--no-gguf", "--anchor", "", "--trials",
          "2", "--output", str(b.work / "b2b_shrink"), "--space", "distill_layers=1",
          "heads=0.0", "ffn=0.0", "sparsity=0.0", "lowrank_energy=0.0", "vocab_trim=false",
          "codebook=false,true", "bits=4", "group_size=16", "quant_epochs=0", "prune_epochs=0",
          "--name", "b2b_shrink", "--export", "int4")
    shrunk = b.results_of("b2b_shrink")
    assert shrunk["base_q4_1_bytes"] is None and shrunk["failures"] == []
    assert "codebook" not in "".join(c["pipeline"] for c in shrunk["candidates"])
    if shrunk["chosen_bytes"]:
        assert shrunk["x_smaller_than_fp32"] == shrunk["base_bytes"] / shrunk["chosen_bytes"] > 1
        gap = shrunk["chosen_vs_base_test"]["rougeL"]
        assert gap["ci95"][0] <= gap["diff"] <= gap["ci95"][1]
        int4 = shrunk["chosen_exports"]["int4"]  # its own 4-bit codes, scored as the choice is
        assert int4["bytes"] > 0 and int4["nbits"]["exact"] > 0
        assert int4["vs_base_test"]["rougeL"]["diff"] == pytest.approx(gap["diff"], abs=1e-6)


def test_generation(tmp_path: Path) -> None:
    """Its own tiny tied Llama and SciTLDR-like files (no need of the NER run the others share)."""
    import math

    import occamtune
    from tests.fixtures.tiny_decoders import tiny_llama_dir

    before = _digest(ROOT / "benchmarks" / "results")
    llama = tiny_llama_dir(tmp_path / "tiny-llama", tied=True)
    b = Bench(tmp_path, llama)
    folder = _scitldr_like(b.data / "scitldr_a")
    b.run("generation", "--data", "scitldr", "--data-root", str(b.data), "--model", str(llama),
          "--limit", "2", "--max-length", "96", "--max-new-tokens", "6",
          "--workdir", str(b.work / "generation"))
    data = b.results_of("generation_scitldr")
    assert data["slice"] and set(data["sides"]) == {"occamtune", "hf"}
    for side in data["sides"].values():
        assert math.isfinite(side["rougeL"]) and side["train_sents_per_s"] > 0
        assert side["train_examples"] == 12
        assert len(side["predictions"]) == 4
    # the gaps on the same test examples, with their bootstrap interval and sacrebleu's p-values
    gaps = data["paired"]
    low, high = gaps["rougeL"]["ci95"]
    assert low <= gaps["rougeL"]["diff"] <= high
    assert all(0 < gaps[k]["p_value"] <= 1 for k in ("bleu", "chrf"))
    # tokens/s of the trained run: torch at batch 1 and 2; llama.cpp where it is installed
    run = b.work / "generation" / "scitldr-occamtune"
    kept = b.work / "kept-export"  # an export written before, timed beside the new ones
    written = occamtune.export(run, kept, weights="fp32")
    b.run("generation_speed", str(run), "--data", str(folder / "test.jsonl"), "--prompts", "3",
          "--new-tokens", "3", "--batch", "2", "--rounds", "1", "--gguf", "f32",
          "--onnx-folder", str(kept), "--workdir", str(b.work / "speed"))
    speed = b.results_of("generation_speed")
    fp32 = speed["sides"]["torch fp32"]
    assert set(fp32["batches"]) == {"1", "2"} and fp32["agree"] == 1.0
    assert all(row["tokens_per_s"] > 0 for row in fp32["batches"].values())
    assert speed["sides"]["onnx kept-export"]["bytes"] == written["bytes"]
    assert speed["sides"]["onnx kept-export"]["agree"] == 1.0
    # the shrink search on the same run, against its own Q4_1 GGUF file
    b.run("generation_shrink", "--base", str(run), "--trials", "1", "--anchor", "",
          "--output", str(b.work / "generation_shrink"), "--space", "distill_layers=0",
          "heads=0.0", "ffn=0.0", "sparsity=0.0", "lowrank_energy=0.0", "vocab_trim=false",
          "codebook=false", "bits=4", "group_size=16", "quant_epochs=0",
          "--gguf-quality", "f32", "q4_1")
    shrunk = b.results_of("generation_shrink")
    scored = shrunk["base_gguf_quality"]  # scored by llama.cpp, where it is installed
    assert list(scored) == ["f32", "q4_1"] and scored["q4_1"]["bytes"] == shrunk["base_q4_1_bytes"]
    if importlib.util.find_spec("llama_cpp") is None:
        assert "pip install -e .[llama]" in scored["f32"]["missing"]
    else:  # llama.cpp writes what the run writes: the run's own test score, from its f32 file
        assert scored["f32"]["test"]["rougeL"] == pytest.approx(shrunk["base_test_rougeL"], abs=0.5)
        assert 0 <= scored["q4_1"]["test"]["rougeL"] <= 100
    assert shrunk["base_q4_1_bytes"] < shrunk["base_bytes"]
    assert shrunk["trials"]["complete"] + shrunk["trials"]["pruned"] >= 1
    if shrunk["chosen_bytes"]:
        assert shrunk["x_smaller_than_q4_1"] == shrunk["base_q4_1_bytes"] / shrunk["chosen_bytes"]
    assert ("llama.cpp f32" in speed["sides"]) == (speed["llama_cpp_missing"] is None)
    onnx = speed["sides"]["onnx fp32"]  # the ONNX decoding step writes the run's tokens
    assert set(onnx["batches"]) == {"1", "2"} and onnx["agree"] == 1.0
    assert speed["sides"]["onnx int8"]["bytes"] < onnx["bytes"]
    assert _digest(ROOT / "benchmarks" / "results") == before, "a smoke run wrote benchmarks/results"


def test_families(bench: Bench) -> None:
    from tests.fixtures.tiny_decoders import tiny_llama_dir, write_tiny_gguf

    llama = tiny_llama_dir(bench.root / "tiny-llama")
    anchor = write_tiny_gguf(llama, bench.root / "tiny.gguf")
    bench.run("families", "--models", str(llama), str(bench.model), "--data-root", str(bench.data),
              "--limit", "2", "--epochs", "1", "--max-length", "32", "--shrink-trials", "1",
              "--anchor", str(anchor), "--workdir", str(bench.work / "families"),
              "--space", "distill_layers=0", "heads=0.0", "ffn=0.0", "sparsity=0.0",
              "lowrank_energy=0.9", "vocab_trim=false", "codebook=false", "bits=32")
    data = bench.results_of("families.slice2")
    assert data["slice"] and set(data["tasks"]) == {"ner", "classify"}
    assert data["tasks"]["classify"][str(llama)]["pooling"] == "last"
    assert data["shrink"]["gguf_bytes"] == anchor.stat().st_size
    measured = data["shrink"]["candidates"]  # what the search measured on all of dev
    assert all(c["bytes"] > 0 for c in measured)
    chosen = data["shrink"]["chosen_pipeline"]
    assert chosen is None or chosen in {c["pipeline"] for c in measured}


def test_the_docs_pages_render_from_fresh_results(bench: Bench) -> None:
    pages = docs.render_pages(bench.results)
    assert all(text.startswith(docs.GENERATED) for text in pages.values())
    assert any("Measured at commit" in text for text in pages.values())
