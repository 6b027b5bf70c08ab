"""On PYTHONPATH, this hides the installed OpenVINO from a process: what a user without the openvino extra has."""

raise ImportError("OpenVINO hidden by the test")
