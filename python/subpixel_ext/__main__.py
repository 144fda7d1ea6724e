"""``python -m subpixel_ext``: see :mod:`subpixel_ext._cli`."""

import sys

from . import _cli

sys.exit(_cli.main())
