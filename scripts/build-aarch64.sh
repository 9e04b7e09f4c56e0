#!/usr/bin/env bash
# Builds both daemons for a Raspberry Pi class site box (64-bit ARM, aarch64 Linux with
# glibc: Raspberry Pi OS 64-bit, Debian arm64) on a Debian x86_64 machine, and packages them
# as arm64 .debs in target/deb/:
#   - the Rust standard library for aarch64-unknown-linux-gnu (rustup target add),
#   - Debian's cross compiler and binutils (gcc-aarch64-linux-gnu: the linker, and the C
#     compiler for ring, SQLite and aws-lc),
#   - the build (--target; the collector with the `site` profile) and packages, by
#     scripts/package-deb.sh --target.
# Copy the collector's .deb to the box and `dpkg -i` it there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET=aarch64-unknown-linux-gnu
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu >/dev/null
fi
rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
exec bash scripts/package-deb.sh --target "$TARGET" "$@"
