"""Kept so that ``from camlib.cam import ...`` works as before: the code lives in :mod:`camlib.core.cam`."""

from camlib.core.cam import *  # noqa: F403
from camlib.core.cam import __all__  # noqa: F401
