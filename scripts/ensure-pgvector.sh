#!/usr/bin/env bash
# Build and install pgvector into the local PostgreSQL server, when it is missing (search's vector index).
# Debian 12 ships no pgvector package; the source tarball sits in ../shared/vendor beside the clone
# (PGVECTOR_TARBALL overrides). Production images use a PostgreSQL image that ships pgvector.
# Not root, no local server or no tarball: say so and carry on (the pgvector tests skip, or fail in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=0.8.6
TARBALL=${PGVECTOR_TARBALL:-}
for dir in ../shared/vendor ../../shared/vendor; do  # a worktree sits one level deeper than the clone
  [ -z "$TARBALL" ] && [ -f "$dir/pgvector-$VERSION.tar.gz" ] && TARBALL="$dir/pgvector-$VERSION.tar.gz"
done
TARBALL=${TARBALL:-../shared/vendor/pgvector-$VERSION.tar.gz}
PG_MAJOR=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1 || true)
if [ -z "$PG_MAJOR" ]; then
  echo "note: no local PostgreSQL server under /usr/lib/postgresql; pgvector not built" >&2; exit 0
fi
if [ -f "/usr/share/postgresql/$PG_MAJOR/extension/vector.control" ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then echo "note: pgvector missing and not root; not built" >&2; exit 0; fi
if [ ! -f "$TARBALL" ]; then echo "note: pgvector source $TARBALL not found; not built" >&2; exit 0; fi
bash scripts/ensure-debs.sh "postgresql-server-dev-$PG_MAJOR" make gcc
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar xzf "$TARBALL" -C "$work"
echo "building pgvector $VERSION for PostgreSQL $PG_MAJOR"
# OPTFLAGS="": no -march=native, so the build runs on any x86-64 the server moves to.
make -s -C "$work/pgvector-$VERSION" OPTFLAGS="" PG_CONFIG="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config" >/dev/null
make -s -C "$work/pgvector-$VERSION" install PG_CONFIG="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config" >/dev/null
