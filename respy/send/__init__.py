"""Stage 1, send: fire N requests at C concurrency and turn each answer (or failure) into a labelled row.

``engine`` runs the request loop, ``transport`` is respy's own HTTP/1.1 lane, ``procs`` spreads a run over
worker processes, ``classify`` turns a response into its label.
"""
