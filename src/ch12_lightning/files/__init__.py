"""Files written whole or not at all: a full disk or a kill leaves no half-written file."""
