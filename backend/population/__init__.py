"""Population analytics: aggregates per home region and ward, surge detection,
disclosure control and the public CDC reference layer (``docs/population.md``)."""
