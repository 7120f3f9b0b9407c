"""A real Envoy on 127.0.0.1, programmed from routing YAML the way istiod programs a sidecar.

``respy.sandbox("rules/")`` is this package called as a function (the package and the function share the
public name, so the module itself is callable): it returns a ``Sandbox`` to use in a ``with`` block.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from respy.sandbox.mesh import Sandbox


def sandbox(*rules: Any, **options: Any) -> Sandbox:
    """See ``respy.sandbox.mesh.sandbox``."""
    from respy.sandbox.mesh import sandbox as build

    return build(*rules, **options)


class _CallableModule(types.ModuleType):
    def __call__(self, *rules: Any, **options: Any) -> Sandbox:
        return sandbox(*rules, **options)


sys.modules[__name__].__class__ = _CallableModule
