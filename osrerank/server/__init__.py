"""The local stand-in model endpoint (SageMaker runtime, TorchServe and TEI-style APIs)."""
