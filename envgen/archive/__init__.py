"""The archive stage: one deterministic bundle file per snapshot, and its hostile-proof restore.

Public API: :func:`write_bundle`, :func:`restore_bundle`, :func:`is_bundle`,
and the constants that name its members and compressions.
"""

from __future__ import annotations

from .bundle import (COMPRESSIONS, DEFAULT_COMPRESSION, MANIFEST, SUFFIX, is_bundle, open_decompressed,
                     restore_bundle, write_bundle)

__all__ = ["COMPRESSIONS", "DEFAULT_COMPRESSION", "MANIFEST", "SUFFIX", "is_bundle", "open_decompressed",
           "restore_bundle", "write_bundle"]
