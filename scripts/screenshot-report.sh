#!/usr/bin/env bash
# Renders DIR/report.html in headless Chromium and writes DIR/report-screenshot.png, to check
# that the page displays in a real browser (charts inline, no fetches).
# Needs Debian's chromium package: apt-get install chromium
set -euo pipefail
dir="${1:?usage: $0 RESULTS_DIR [HEIGHT_PX]}"
height="${2:-5200}"
page="$(cd "$dir" && pwd)/report.html"
[ -f "$page" ] || { echo "no report.html in $dir (run: pushbench report $dir)" >&2; exit 2; }
browser="$(command -v chromium || command -v chromium-browser || true)"
[ -n "$browser" ] || { echo "chromium is not installed (apt-get install chromium)" >&2; exit 2; }
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --window-size="1300,$height" --screenshot="$dir/report-screenshot.png" "file://$page" 2>/dev/null
echo "$dir/report-screenshot.png"
