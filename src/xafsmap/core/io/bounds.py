"""Bounds on what an input file may make xafsmap read, hold or take time for.

They keep a hostile or damaged input from taking unbounded memory or time; the
readers raise a ``ValueError`` naming the file when one is passed.
"""

from __future__ import annotations

__all__ = ["ENERGY_RANGE_EV", "MAX_COMPRESSION", "MAX_NESTING", "MAX_PROJECT_BYTES", "MAX_PROJECT_VALUES",
           "PARSE_SECONDS"]

#: Energies of a stack or reference, eV: X-ray absorption edges lie far inside.
ENERGY_RANGE_EV = (1.0, 1e6)

#: Largest Athena project (decompressed) or reference file read, bytes.
MAX_PROJECT_BYTES = 64 * 2**20
#: Most values (numbers, strings) one Athena project may hold: 200 records of 10 000
#: points in two arrays need 4 M; as Python objects they take ~250 MB.
MAX_PROJECT_VALUES = 4_000_000
#: Seconds one reference file may take to parse.
PARSE_SECONDS = 20.0
#: Deepest nesting of lists in a project file or a recipe.
MAX_NESTING = 32
#: Largest ratio of decompressed to compressed bytes a TIFF may claim for codecs whose
#: ratio is bounded (Deflate ~1032, LZW ~1400, PackBits 64).
MAX_COMPRESSION = 2000
