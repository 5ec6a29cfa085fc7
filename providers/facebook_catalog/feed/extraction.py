"""Which of two occurrences of one product id is the one to send: the latest extraction.

Airbyte stamps every record with ``_airbyte_extracted_at`` (epoch milliseconds). Parts of one sync
may be uploaded in any order, and a file re-uploaded later may hold older data, so reading order
alone can send a stale product. The rule, for occurrences read in order (files in snapshot order,
then lines):

- a later-read occurrence replaces the one held, unless both carry an extraction time and the
  later-read one's is older: the latest extraction wins, and equal times (or a file without
  Airbyte's columns) leave it to reading order, so the later file and line win.
"""

from __future__ import annotations


def supersedes(later: int | None, held: int | None) -> bool:
    """Whether an occurrence read after the held one, extracted at ``later``, replaces it."""
    return later is None or held is None or later >= held
