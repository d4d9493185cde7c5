"""Data-subject requests (access, portability, erasure, rectification, restriction, objection)
tracked against legal deadlines and run by jobs; legal holds; tombstones of erased subjects."""
