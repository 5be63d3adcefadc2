"""The files of the interchange format v1 and their columns, from the import's own specs.

One definition of the format in code: the demo writes exactly what `siyu import` reads.
(tests/demo types the headers in from DATA_FORMAT.md, so the spec itself is still checked.)
"""

from __future__ import annotations

from siyu.imports.specs import SPECS

FILE_COLUMNS: dict[str, tuple[str, ...]] = {spec.name: spec.column_names for spec in SPECS}
