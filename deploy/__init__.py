"""deploy: integer network IR, bit-exact NumPy reference, PULP C emitter and host validation."""
