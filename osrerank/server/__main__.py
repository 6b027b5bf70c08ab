"""``python -m osrerank.server SPEC_JSON``: how the standin target starts the server in the background."""

import sys

from ..errors import OsRerankError
from .run import REFUSED, ServerSpec, serve

try:
    serve(ServerSpec.model_validate_json(sys.argv[1]))
except OsRerankError as exc:
    sys.exit(REFUSED + " ".join(str(exc).split()))
