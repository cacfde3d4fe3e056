"""The municipalities register: who the citizens, tickets and staff scopes point at.

* ``index``: names (codes, Arabic and Latin names, aliases, however spelt) to ids;
* ``csvfile``: a register file read and checked on its own;
* ``register``: the register loaded from CSV, checked whole before anything is written;
* ``merge``: duplicates merged into one municipality;
* ``service``: one municipality created or edited, and the admin list page.
"""

from callcenter.municipalities.common import Problem, RegisterError
from callcenter.municipalities.csvfile import decode_register
from callcenter.municipalities.index import Index, load_index
from callcenter.municipalities.merge import merge_municipalities
from callcenter.municipalities.register import (
    STARTER,
    LoadReport,
    Mode,
    ensure_starter_register,
    load_register,
)

__all__ = [
    "STARTER",
    "Index",
    "LoadReport",
    "Mode",
    "Problem",
    "RegisterError",
    "decode_register",
    "ensure_starter_register",
    "load_index",
    "load_register",
    "merge_municipalities",
]
