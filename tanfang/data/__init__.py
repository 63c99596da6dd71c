"""Public administrative facts shipped with Tanfang (see docs/areas.md)."""
