"""Stage 6, report: the table, JSON and CSV a person or a script reads."""
