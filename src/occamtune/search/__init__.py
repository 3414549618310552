"""The search for the shortest model that keeps accuracy, and description-length accounting.

    from occamtune.search import shrink, SearchSpace, prequential_codelength
"""

from occamtune.search.mdl import prequential_codelength
from occamtune.search.shrink import ShrinkResult, shrink
from occamtune.search.space import SearchSpace

__all__ = ["SearchSpace", "ShrinkResult", "prequential_codelength", "shrink"]
