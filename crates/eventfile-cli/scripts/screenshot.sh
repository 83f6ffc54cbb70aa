#!/bin/sh
# Makes docs/view.png from a real run of `eventfile view` in tmux: a generated shop, the
# events of one order with the selected event's JSON, in an 80x24 terminal.
# Needs tmux and Pillow (pip install pillow). Run from the repository root:
#   cargo build --release -p eventfile-cli && sh crates/eventfile-cli/scripts/screenshot.sh
set -eu
bin=${EVENTFILE_BIN:-${CARGO_TARGET_DIR:-target}/release/eventfile}
dir=$(mktemp -d)
sock=eventfile-shot-$$
trap 'tmux -L $sock kill-server 2>/dev/null || true; rm -rf "$dir"' EXIT
"$bin" --dir "$dir/shop" generate --events 200000 --seed 7 --start 2026-10-01T00:00:00Z >/dev/null
tmux -L $sock -f /dev/null new-session -d -s s -x 80 -y 24 \
  "env -u NO_COLOR TERM=xterm-256color $bin --dir $dir/shop view --prefix order-1 --type OrderPlaced --type ItemAdded --type PaymentReceived --type OrderShipped"
wait_for() {
  i=0
  until tmux -L $sock capture-pane -p -t s | grep -q "$1"; do
    i=$((i + 1)); [ $i -lt 200 ] || { echo "never showed $1" >&2; exit 1; }
    sleep 0.05
  done
}
wait_for 'OrderPlaced'
tmux -L $sock send-keys -t s j j j
wait_for '"seq": '
tmux -L $sock capture-pane -e -p -t s > "$dir/screen.ansi"
python3 "$(dirname "$0")/ansi2png.py" "$dir/screen.ansi" docs/view.png 80 24
echo "docs/view.png"
