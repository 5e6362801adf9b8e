#!/usr/bin/env bash
# Builds castore-test/s3:1 unless it exists (see build-images.sh).
exec "$(dirname "${BASH_SOURCE[0]}")/build-images.sh" s3 "$@"
