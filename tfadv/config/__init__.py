"""tfadv.config."""
