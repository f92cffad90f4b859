"""Kept so that ``from camlib.boxes import ...`` works as before: the code lives in :mod:`camlib.core.boxes`."""

from camlib.core.boxes import *  # noqa: F403
from camlib.core.boxes import __all__  # noqa: F401
