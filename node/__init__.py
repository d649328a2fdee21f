"""EWX node: the exchange log, checkpoints, witnessing and the services around them."""
