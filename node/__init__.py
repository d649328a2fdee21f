"""EWX national node: the core (models, store, signing, exchange log, audit, CLI).

Never imports `gateway`; the gateway depends on this package, not the reverse.
"""
