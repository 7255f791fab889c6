"""Domain: vital signs, scores, alerts, users, storage. Knows nothing of Spark or Dash."""
