"""The parts of the risk-models page (``webapp/pages/risk_models.py``): pure figure and
table builders for a version's evaluation and for its live monitoring."""
