"""One module per verb; each is a plain function the CLI and the scheduler both call."""
