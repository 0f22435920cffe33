"""What a credential looks like by its shape alone (a provider's prefix and length), for text that may hold one the
config does not name as a secret: a key pasted into the wrong setting, a key a model or a tool wrote."""

from __future__ import annotations

import re

KEY_SHAPES = re.compile(
    r"(?:sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
    r"|hf_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}|xox[abposr]-[A-Za-z0-9\-]{10,}|AIza[0-9A-Za-z_\-]{30,}"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/\-]{16,}=*)")


def without_key_shapes(text: str) -> str:
    """`text` with everything shaped like a credential replaced by `[redacted]`."""
    return KEY_SHAPES.sub("[redacted]", text)
