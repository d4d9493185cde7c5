"""Anonymised dataset release: generalisation to k-anonymity and l-diversity with measured
re-identification risk."""
