#!/usr/bin/env bash
# Builds hush and runs a three-person end-to-end encrypted chat on this
# machine: a relay on 127.0.0.1, alice and bob as scripted members, and
# you as carol. Type a line and press Enter to send; /help lists commands;
# /quit (or Ctrl-D) ends the demo and stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

port="${HUSH_DEMO_PORT:-40623}"
cargo build --release --quiet
hush=target/release/hush
dir=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

# The example keys are public (see keys.example/README.md); hush refuses a
# private key that others can read, and git does not keep file modes.
for who in alice bob carol; do
  cp "keys.example/$who.pem" "$dir/$who.pem"
  chmod 600 "$dir/$who.pem"
done

"$hush" server --bind "127.0.0.1:$port" --data "$dir/relay" >"$dir/relay.log" 2>&1 &
member() { # name, then lines to say
  local who=$1; shift
  {
    sleep 2
    for line in "$@"; do echo "$line"; sleep 2; done
    sleep 3600
  } | "$hush" client --server "127.0.0.1:$port" --key "$dir/$who.pem" --room demo \
        --data "$dir/$who" >"$dir/$who.log" 2>&1 &
}
member alice "hi, I'm alice; this room is end-to-end encrypted" "the relay only ever sees ciphertext"
sleep 1
member bob "hello alice, bob here" "carol, type something: we'll both read it"

echo "hush demo: relay on 127.0.0.1:$port, alice and bob are in #demo; you are carol."
echo "(logs in $dir while it runs)"
"$hush" client --server "127.0.0.1:$port" --key "$dir/carol.pem" --room demo --data "$dir/carol"
