#!/usr/bin/env bash
# Install what scep-lab's main job and tests need from Debian, idempotently.
# Packages: the OpenSSL CLI and headers, the micromdm SCEP peer (`scep`), PostgreSQL for the
# scale-out tests, the small tools the peer scripts use, and headless Chromium with its
# WebDriver (and a font) for the web console's browser tests.
# As root it installs what is missing; otherwise it only reports what is missing and fails.
set -eu
pkgs="build-essential pkg-config libssl-dev openssl ca-certificates curl python3 scep socat iproute2 util-linux postgresql chromium chromium-driver fonts-dejavu-core"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "setup: Debian packages present"
else
    if [ "$(id -u)" != 0 ]; then
        echo "setup: missing Debian packages (as root: apt-get install$missing)" >&2
        exit 1
    fi
    echo "setup: apt-get install$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing > /dev/null
fi
command -v cargo > /dev/null || { echo "setup: cargo not found (install Rust with rustup)" >&2; exit 1; }
