"""Answers to the questions lineage is recorded for (lineagedb.v1.LineageService)."""
