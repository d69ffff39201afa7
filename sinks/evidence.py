"""Evidence bundles: a zip of plain files (MP4, JPEG, JSON) and a manifest with their SHA-256.

The bundle must open without Sightline, so it holds nothing but standard formats, and whoever
receives it can check that no file was changed since: `sha256sum` of each file against
`manifest.json`.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime
from typing import Any

MANIFEST = "manifest.json"


def build_zip(files: dict[str, bytes], about: dict[str, Any]) -> bytes:
    """The zip: every file, then `manifest.json` (`about` plus name, bytes and sha256 of each file)."""
    manifest = {
        **about,
        "created_at": datetime.now(UTC).isoformat(),
        "files": [
            {"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in files.items()
        ],
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            # MP4 and JPEG are compressed already; deflate only what is text.
            method = zipfile.ZIP_DEFLATED if name.endswith(".json") else zipfile.ZIP_STORED
            zf.writestr(name, data, compress_type=method)
        zf.writestr(MANIFEST, json.dumps(manifest, indent=2, default=str), compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def verify_zip(data: bytes) -> list[str]:
    """Problems found (empty = every file listed, present and unchanged, and nothing unlisted)."""
    problems = []
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        manifest = json.loads(zf.read(MANIFEST))
        listed = {f["name"]: f for f in manifest["files"]}
        for name in zf.namelist():
            if name != MANIFEST and name not in listed:
                problems.append(f"{name}: not in the manifest")
        for name, entry in listed.items():
            try:
                body = zf.read(name)
            except KeyError:
                problems.append(f"{name}: missing")
                continue
            if hashlib.sha256(body).hexdigest() != entry["sha256"] or len(body) != entry["bytes"]:
                problems.append(f"{name}: hash differs")
    return problems
