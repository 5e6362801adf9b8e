#!/usr/bin/env bash
# Builds castore-test/postgres:15 unless it exists (see build-images.sh).
exec "$(dirname "${BASH_SOURCE[0]}")/build-images.sh" postgres "$@"
