"""tfadv.landscape."""
