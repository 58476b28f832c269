"""tfadv.layers."""
