"""``python -m smic_fast`` runs the ``smic`` command line."""
import sys

from .cli import main

sys.exit(main())
