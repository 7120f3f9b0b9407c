"""The command line, on top of every stage: nothing below imports it."""
