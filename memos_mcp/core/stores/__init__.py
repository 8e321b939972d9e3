"""Storage ports and their backends."""
