#!/usr/bin/env bash
# Debian packages of both daemons: devtel-gateway_VERSION_ARCH.deb and
# devtel-collector_VERSION_ARCH.deb, with Debian's own dpkg-deb.
#
#   bash scripts/package-deb.sh                       # build, packages in target/deb/
#   bash scripts/package-deb.sh --bin-dir target/debug --out DIR   # package built binaries
#   bash scripts/package-deb.sh --target aarch64-unknown-linux-gnu  # cross (see README)
#
# Each package holds the binary (stripped) in /usr/bin, its hardened systemd unit in
# /lib/systemd/system (ExecStart pointing to /usr/bin), the documented example config as
# /etc/devtel/{gateway,collector}.toml (a conffile: an upgrade keeps local changes), and the
# README. The state directories (/var/lib/devtel-gateway, /var/lib/devtel-collector) are made
# by systemd (StateDirectory, DynamicUser). Installing does not start the service: the
# configuration needs the site's devices or units first (systemctl enable --now ...).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

BIN_DIR=""
OUT="target/deb"
TARGET=""
while [ $# -gt 0 ]; do
    case "$1" in
        --bin-dir) BIN_DIR="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --target) TARGET="$2"; shift 2 ;;
        *) echo "usage: $0 [--bin-dir DIR] [--out DIR] [--target TRIPLE]" >&2; exit 2 ;;
    esac
done

command -v dpkg-deb >/dev/null || { echo "error: dpkg-deb not found (Debian's dpkg)" >&2; exit 1; }
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
[ -n "$VERSION" ] || { echo "error: no workspace version in Cargo.toml" >&2; exit 1; }

# The gateway is built with the release profile, the collector with `site` (Cargo.toml:
# smaller code, fewer pages in the site box's memory) and linked statically (C runtime
# included: no shared libc, libm and loader mapped, about 1 MB less resident on the site box;
# name lookups still use the system's NSS modules). --bin-dir packages both from one folder.
GATEWAY_DIR="$BIN_DIR"
COLLECTOR_DIR="$BIN_DIR"
if [ -z "$BIN_DIR" ]; then
    OUT_BASE="${CARGO_TARGET_DIR:-target}${TARGET:+/$TARGET}"
    cargo build --locked --release ${TARGET:+--target "$TARGET"} -p devtel-gateway
    # crt-static needs an explicit --target, so that build scripts and proc macros stay dynamic.
    COLLECTOR_TARGET="${TARGET:-$(rustc -vV | sed -n 's/^host: //p')}"
    RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
        cargo build --locked --profile site --target "$COLLECTOR_TARGET" -p devtel-collector
    GATEWAY_DIR="$OUT_BASE/release"
    COLLECTOR_DIR="${CARGO_TARGET_DIR:-target}/$COLLECTOR_TARGET/site"
fi
case "$TARGET" in
    "") ARCH="$(dpkg --print-architecture)"; STRIP=strip ;;
    aarch64-*) ARCH=arm64; STRIP=aarch64-linux-gnu-strip ;;
    armv7-*|arm-*) ARCH=armhf; STRIP=arm-linux-gnueabihf-strip ;;
    x86_64-*) ARCH=amd64; STRIP=strip ;;
    *) echo "error: no Debian architecture known for $TARGET" >&2; exit 2 ;;
esac
command -v "$STRIP" >/dev/null || STRIP=true

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

package() {
    local name="$1" conf="$2" unit="$3" example="$4" summary="$5" description="$6"
    local dir="$WORK/$name"
    local bin_dir="$GATEWAY_DIR"
    [ "$name" != devtel-collector ] || bin_dir="$COLLECTOR_DIR"
    [ -x "$bin_dir/$name" ] || { echo "error: $bin_dir/$name not built" >&2; exit 1; }
    install -d "$dir/DEBIAN" "$dir/usr/bin" "$dir/lib/systemd/system" "$dir/etc/devtel" \
        "$dir/usr/share/doc/$name"
    install -m 0755 "$bin_dir/$name" "$dir/usr/bin/$name"
    "$STRIP" "$dir/usr/bin/$name"
    sed 's#/usr/local/bin/#/usr/bin/#g' "$unit" > "$dir/lib/systemd/system/$name.service"
    chmod 0644 "$dir/lib/systemd/system/$name.service"
    install -m 0644 "$example" "$dir/etc/devtel/$conf"
    install -m 0644 README.md "$dir/usr/share/doc/$name/README.md"
    echo "/etc/devtel/$conf" > "$dir/DEBIAN/conffiles"
    local size
    size="$(du -sk --exclude=DEBIAN "$dir" | cut -f1)"
    cat > "$dir/DEBIAN/control" <<CONTROL
Package: $name
Version: $VERSION
Architecture: $ARCH
Maintainer: devtel developers <devtel@example.invalid>
Installed-Size: $size
Depends: libc6 (>= 2.31)
Section: net
Priority: optional
Homepage: https://example.invalid/devtel
Description: $summary
$(printf '%s\n' "$description" | fold -s -w 78 | sed 's/^/ /')
CONTROL
    cat > "$dir/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
exit 0
SCRIPT
    cat > "$dir/DEBIAN/prerm" <<SCRIPT
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl stop $name.service 2>/dev/null || true
fi
exit 0
SCRIPT
    cat > "$dir/DEBIAN/postrm" <<'SCRIPT'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
exit 0
SCRIPT
    chmod 0755 "$dir/DEBIAN/postinst" "$dir/DEBIAN/prerm" "$dir/DEBIAN/postrm"
    local deb="$OUT/${name}_${VERSION}_${ARCH}.deb"
    dpkg-deb --root-owner-group -Zxz --build "$dir" "$deb" >/dev/null
    echo "$deb"
}

package devtel-gateway gateway.toml gateway/dist/devtel-gateway.service gateway/gateway.example.toml \
    "devtel gateway: device telemetry per administrative unit" \
    "Stores the telemetry of devtel collectors durably (SQLite), aggregates it per administrative unit, publishes retained JSON documents, events and Home Assistant discovery over MQTT, and serves the dashboard, the monthly cost-allocation report and the HTTP API. It can run its own MQTT broker (broker = \"embedded\")."
package devtel-collector collector.toml collector/dist/devtel-collector.service collector/collector.example.toml \
    "devtel collector: polls copiers, phones and docks over SNMP" \
    "Polls a site's copiers, printers, IP phones and dock switches over SNMP v1/v2c/v3, keeps every reading in an on-disk spool until the gateway has stored it, and publishes compact telemetry over MQTT."
