#!/usr/bin/env bash
# Refresh a backend's environment locks, one per torch build:
#   backends/<name>/requirements.in     -> requirements.lock      PyPI's torch (on Linux x86_64 a CUDA build
#                                                                 with its nvidia-* wheels), for CUDA hosts
#   backends/<name>/requirements-cpu.in -> requirements-cpu.lock  PyTorch's CPU build (a `+cpu` pin), for
#                                                                 hosts without a CUDA GPU
# The CPU lock is constrained to the CUDA lock's versions, so the two differ only in the torch build: the
# `+cpu` packages, no nvidia-*/cuda-*/triton, and no torchvision (PyPI's torchvision is built against the
# CUDA torch and fails to import beside a CPU one; no backend's text training imports it).
# A `+cpu` wheel comes from a local folder in UV_FIND_LINKS (comma-separated) when one holds it, else from
# the PyTorch CPU index ($UFT_TORCH_CPU_INDEX, default https://download.pytorch.org/whl/cpu), read as a
# find-links page of that package only, so every other package still comes from PyPI.
# Usage: scripts/lock.sh BACKEND [--cpu-only]   (pass --upgrade etc. through UV_* settings, e.g. UV_UPGRADE=1)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BACKEND=${1:?usage: scripts/lock.sh BACKEND [--cpu-only]}
DIR=backends/$BACKEND
[ -f "$DIR/requirements.in" ] || { echo "no $DIR/requirements.in" >&2; exit 2; }
UV=("${ROOT}/.venv/bin/python" -m uv)
INDEX=${UFT_TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
COMPILE=(pip compile --python-version 3.11 --generate-hashes)

cd "$DIR"
if [ "${2:-}" != "--cpu-only" ]; then
    "${UV[@]}" "${COMPILE[@]}" --quiet requirements.in --custom-compile-command "scripts/lock.sh $BACKEND" \
        -o requirements.lock
fi
[ -f requirements-cpu.in ] || { echo "$DIR has no requirements-cpu.in: one lock only"; exit 0; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# the packages requirements-cpu.in names (with their own pins) are not constrained by the CUDA lock
named=$(sed -n 's/^\([A-Za-z0-9._-]*\)[=<>!~ ].*/\1/p' requirements-cpu.in | tr 'A-Z_.' 'a-z--' | sort -u)
grep -E '^[A-Za-z0-9._-]+==' requirements.lock | sed 's/ .*//' | while read -r pin; do
    name=$(echo "${pin%%==*}" | tr 'A-Z_.' 'a-z--')
    case "$name" in torchvision|triton|nvidia-*|cuda-*) continue ;; esac
    grep -qx "$name" <<<"$named" || echo "$pin"
done >"$tmp/constraints.txt"

sources=()
for pin in $(sed -n 's/^\([A-Za-z0-9._-]*==[^ ;]*+cpu\).*/\1/p' requirements-cpu.in); do
    name=${pin%%==*} version=${pin#*==}
    local_copy=""
    IFS=, read -ra folders <<<"${UV_FIND_LINKS:-}"
    for folder in "${folders[@]}"; do
        folder=${folder#file://}
        if compgen -G "$folder/${name//-/_}-$version-*.whl" >/dev/null; then local_copy=$folder; fi
    done
    if [ -n "$local_copy" ]; then echo "$pin: from $local_copy"; else
        echo "$pin: from $INDEX/$name/"; sources+=(--find-links "$INDEX/$name/"); fi
done
"${UV[@]}" "${COMPILE[@]}" --quiet requirements-cpu.in "${sources[@]}" -c "$tmp/constraints.txt" \
    --no-emit-package torchvision --custom-compile-command "scripts/lock.sh $BACKEND" -o "$tmp/cpu.lock"
# the constraints file is temporary: name what it holds in the lock's "via" notes
sed "s|$tmp/constraints.txt|requirements.lock|" "$tmp/cpu.lock" >requirements-cpu.lock
