#!/usr/bin/env bash
# Install the Debian/Ubuntu packages the workbench needs, only those missing.
#   fonts-noto-color-emoji  the colour emoji font the emoji-scenes generator renders
#   unicode-data            emoji-test.txt: emoji names, groups and subgroups
#   chromium                (with --browser) the real-browser test drives it headless
# Usage: scripts/install-system-packages.sh [--browser]
set -euo pipefail
packages=(fonts-noto-color-emoji unicode-data)
if [[ "${1:-}" == "--browser" ]]; then packages+=(chromium); fi
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [[ ${#missing[@]} -eq 0 ]]; then exit 0; fi
if ! command -v apt-get >/dev/null; then
    echo "Missing system packages: ${missing[*]}. Install them with your system's package manager." >&2
    exit 1
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
echo "Installing system packages: ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
