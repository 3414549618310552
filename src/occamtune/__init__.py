"""occamtune: fine-tune a pretrained transformer, then find the shortest model that performs as well.

    import occamtune
    run = occamtune.train(occamtune.load_config("configs/ner-conll2003.yaml"))
    occamtune.load("runs/ner").predict(["Angela Merkel met Emmanuel Macron in Paris ."])
"""

# `occamtune.train` and `occamtune.compress` are both subpackages and functions. Importing the
# subpackages first means a later `import occamtune.compress.x` does not rebind the name: the
# package attribute stays the function that users call.
import occamtune.compress as _compress_package  # noqa: F401
import occamtune.export as _export_module  # noqa: F401  (registers the ONNX model format)
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
           "export", "load", "load_config", "predict", "report", "serve", "shrink", "train"]
__version__ = "0.1.0"
