"""Data sources: the seeded portfolio generator and the UCI adapter."""
