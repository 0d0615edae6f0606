"""The reference host: the training loop, checkpoints, the ``gan-train`` command."""
