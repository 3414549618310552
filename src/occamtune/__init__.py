"""occamtune: fine-tune a pretrained transformer, then find the shortest model that performs as well.

    import occamtune
    run = occamtune.train(occamtune.load_config("configs/ner-conll2003.yaml"))
    occamtune.load("runs/ner").predict(["Angela Merkel met Emmanuel Macron in Paris ."])
"""

from occamtune.api import Predictor, Run, load, train
from occamtune.config import RunConfig, load_config
from occamtune.errors import ConfigError, DataError, ModelError, OccamError

__all__ = ["ConfigError", "DataError", "ModelError", "OccamError", "Predictor", "Run", "RunConfig",
           "load", "load_config", "train", "compress"]
__version__ = "0.1.0"


def compress(model, configs, ctx):  # noqa: ANN001, ANN201 - thin re-export, typed in compress.base
    """Apply a list of compression configs to a model (see `occamtune.compress.compress`)."""
    from occamtune.compress import compress as _compress

    return _compress(model, configs, ctx)
