"""``python -m osrerank`` runs the CLI."""

from .cli import main

main()
