"""Pytest plugin `sightline.testing` (loaded automatically when sightline is installed).

Fixtures for users' own tests are added as replay lands; see README "Testing your rules".
"""

from __future__ import annotations
