#!/bin/sh
# Debian's chromium for the headless viewer test (test/inspect-html.test.ts skips without it).
# Idempotent; retries while another apt/dpkg holds the lock; refreshes the package lists once if needed.
set -eu
command -v chromium >/dev/null 2>&1 && { chromium --version; exit 0; }
updated=no
for attempt in 1 2 3 4 5 6; do
  if apt-get install -y --no-install-recommends chromium; then chromium --version; exit 0; fi
  if [ "$updated" = no ]; then apt-get update && updated=yes || true; fi
  echo "install-chromium: attempt $attempt failed (apt locked?); retrying in 10 s" >&2
  sleep 10
done
echo "install-chromium: giving up" >&2
exit 1
