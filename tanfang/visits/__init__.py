"""Visits: service teams, visit obligations, the visit record and visit rates."""
