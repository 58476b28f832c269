"""tfadv.bench."""
