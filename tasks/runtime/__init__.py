"""How the processes of a run live and end together."""
