"""Early-warning scores (NEWS2, qSOFA, SIRS) as pure functions."""

from backend.scores.news2 import (
    News2Band,
    News2Inputs,
    News2Result,
    news2,
    news2_band,
    parameter_score,
)
from backend.scores.qsofa import QsofaResult, qsofa
from backend.scores.sirs import SirsResult, sirs

__all__ = [
    "News2Band",
    "News2Inputs",
    "News2Result",
    "QsofaResult",
    "SirsResult",
    "news2",
    "news2_band",
    "parameter_score",
    "qsofa",
    "sirs",
]
