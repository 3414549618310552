"""occamtune: fine-tune a pretrained transformer, then find the shortest model that performs as well.

    import occamtune
    run = occamtune.train(occamtune.load_config("configs/ner-conll2003.yaml"))
    occamtune.load("runs/ner").predict(["Angela Merkel met Emmanuel Macron in Paris ."])
"""

# `occamtune.train`, `compress`, `export`, `report` and `serve` are both subpackages (or modules)
# and functions. Importing the subpackages first means a later `import occamtune.serve.app`
# does not rebind the name: the package attribute stays the function that users call. (The
# serve and report packages' own __init__ import nothing heavy.)
import occamtune.compress as _compress_package  # noqa: F401
import occamtune.export as _export_module  # noqa: F401  (registers the ONNX model format)
import occamtune.report as _report_package  # noqa: F401
import occamtune.serve as _serve_package  # noqa: F401
import occamtune.train as _train_package  # noqa: F401
from occamtune.api import (
    Predictor,
    Run,
    SearchSpace,
    ShrinkResult,
    codelength,
    compress_run,
    describe_data,
    evaluate,
    export,
    export_gguf,
    load,
    predict,
    report,
    serve,
    shrink,
    train,
)
from occamtune.compress import compress
from occamtune.config import RunConfig, load_config
from occamtune.errors import ConfigError, DataError, ModelError, OccamError

__all__ = ["ConfigError", "DataError", "ModelError", "OccamError", "Predictor", "Run", "RunConfig",
           "SearchSpace", "ShrinkResult", "codelength", "compress", "compress_run", "describe_data",
           "evaluate",
           "export", "export_gguf", "load", "load_config", "predict", "report", "serve", "shrink", "train"]
__version__ = "0.1.0"
