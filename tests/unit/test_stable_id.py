"""`stable_id` is written out for speed; it must stay the uuid5 it always was (stored ids depend on it)."""

from __future__ import annotations

import random
import uuid

from bus.contracts import ID_NAMESPACE, stable_id


def test_stable_id_is_the_uuid5_of_its_parts() -> None:
    rnd = random.Random(7)
    alphabet = "abcXYZ019|-_:. \x1fäé☃𝄞"
    for _ in range(2000):
        parts: list[object] = [
            "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 12))) for _ in range(rnd.randint(0, 7))
        ]
        parts += rnd.sample([None, 3, -1.5, 12.345, True], rnd.randint(0, 2))
        expected = str(uuid.uuid5(ID_NAMESPACE, "|".join(str(p) for p in parts)))
        assert stable_id(*parts) == expected
    assert stable_id() == str(uuid.uuid5(ID_NAMESPACE, ""))
