"""``python -m osrerank`` runs the CLI (used to start the stand-in in the background)."""

from .cli import main

main()
