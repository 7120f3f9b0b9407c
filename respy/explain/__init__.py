"""Stage 5, explain: what in the manifests breaks a split (``analyze``) and what a failed split looks like
instead (``diagnosis``)."""
