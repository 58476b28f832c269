"""tfadv.tuning."""
