"""Home counties of simulated patients, for the population analytics.

Each generated or replayed patient gets a home county drawn from a catchment
(``backend/population/catchment.py``). The draw is seeded per patient, so the same
patient always gets the same county whatever else is simulated.
"""

from __future__ import annotations

from backend.population.catchment import Catchment
from devices.wire import stable_rng


def draw_fips(catchment: Catchment, seed: object, patient_id: str) -> str:
    """The home county of ``patient_id``: reproducible for (seed, patient)."""
    return catchment.draw(stable_rng("home-fips", seed, patient_id).random())
