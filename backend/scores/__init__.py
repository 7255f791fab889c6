"""Early-warning scores (NEWS2, qSOFA, SIRS) as pure functions."""
