"""tfadv.metrics."""
