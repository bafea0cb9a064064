#!/usr/bin/env bash
# axolotl job written by uft: run it in this folder.
set -euo pipefail
cd "$(dirname "$0")"
axolotl train config.yaml
