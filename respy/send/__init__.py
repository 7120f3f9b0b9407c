"""Stage 1, send: fire N requests at C concurrency and turn each answer (or failure) into a labelled row.

``engine`` runs the request loop (``load`` says what to send and how much), ``transport`` is respy's own
HTTP/1.1 lane for plain ``http://`` (llhttp parsing, no httpx objects), ``httpx_lane`` serves https,
HTTP/2 and trio, ``procs`` spreads a run over worker processes, ``classify`` turns a response into its label.
"""
