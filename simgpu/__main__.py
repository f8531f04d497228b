"""``python -m simgpu`` runs the CLI (used on machines where simgpu is not installed)."""

import sys

from simgpu.cli import main

sys.exit(main())
