"""pipelines.identity stays importable without Ray, FastAPI or Starlette."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import pipelines.identity.service
heavy = sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'fastapi', 'starlette'})
print(','.join(heavy))
"""


def test_identity_imports_no_web_or_ray_framework():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""
