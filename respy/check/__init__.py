"""Stage 4, check: match labels to the declared destinations and decide PASS / FAIL / INCONCLUSIVE.

``assign`` maps labels to destinations, ``stats`` holds the statistical primitives, ``verdict`` the fixed-N
decision, ``sequential`` the anytime-valid one, ``plan`` ties a run to its check.
"""
