"""What the torchserve target archives with a model: its TorchServe handler (package data)."""
