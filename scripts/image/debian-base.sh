#!/usr/bin/env bash
# Makes a minimal Debian bookworm root filesystem (what debian:bookworm-slim holds) for the
# local stand-in of node:24-bookworm-slim: debootstrap's minbase variant, then without
# apt's caches and lists, documentation, manuals and translations.
# Usage: debian-base.sh ROOTFS MIRROR   (scripts/test-image.sh imports ROOTFS into podman)
set -euo pipefail
rootfs=$1
mirror=$2
debootstrap --variant=minbase bookworm "$rootfs" "$mirror"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/*.log
find "$rootfs"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
