"""tfadv.evaluation."""
