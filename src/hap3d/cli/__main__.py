"""``python -m hap3d.cli`` (and ``torchrun -m hap3d.cli``): the ``hap3d`` command."""

import sys

from hap3d.cli import main

sys.exit(main())
