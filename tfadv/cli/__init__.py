"""tfadv.cli."""
