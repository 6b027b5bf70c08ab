"""``python -m osrerank.server OPTIONS_JSON``: how the stand-in target starts the server in the background."""

import sys

from ..errors import OsRerankError
from .run import ServeOptions, serve

try:
    serve(ServeOptions.from_json(sys.argv[1]))
except OsRerankError as exc:
    sys.exit(f"osrerank serve: {exc}")
