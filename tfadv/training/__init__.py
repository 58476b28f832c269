"""tfadv.training."""
