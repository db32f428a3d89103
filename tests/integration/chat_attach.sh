#!/usr/bin/env bash
# Attachments through `tessera` against a real tesserad started with
# --attachment-max-bytes 1m: alice attaches a file in a conversation with
# bob, bob's `chat read` shows it with its size and caption, `chat save`
# writes the same bytes; a blob altered on the server's disk makes
# `chat save` fail with an error and write nothing; a file over the
# server's limit is refused with too_large; `attach upload|download` do
# the two halves by hand. The server runs on a random loopback port,
# stopped by pid.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${TSR_BUILD:-$root/build/asan}
work=$(mktemp -d)
srv_pid=
trap '[[ -n $srv_pid ]] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid"; rm -rf "$work"' EXIT
. "$root/tests/integration/lib.bash"

start_tesserad chat_attach --workers 2 --rate-per-account 0 --attachment-max-bytes 1m

export TSR_PASSWORD='correct horse battery staple'
t() { "$build/tessera" --server "127.0.0.1:$port" --state "$work/$1.db" "${@:2}"; }
blobs() { ls "$work/data/blobs" | sort; }

for p in alice bob; do
  check "$p registers" t $p register --login $p
  check "$p social profile" t $p profile set social --handle $p
  check "$p reachable" t $p reachability social set social everyone
  check "$p keys" t $p keys upload
done
C=$(t alice chat create --app social --with @bob:social)
check_eq "conversation made" 22 "${#C}"
check "bob joins" t bob chat list
check "a text first" t alice chat send "$C" "look at this"

# 700 KiB: several secretstream chunks, one Range request.
head -c 716800 /dev/urandom >"$work/photo.bin"
out=$(t alice chat attach "$C" "$work/photo.bin" --caption "holiday")
seq=$(grep -o '^sent, seq [0-9]*$' <<<"$out" | grep -o '[0-9]*$')
check_eq "attach prints the seq" "sent, seq $seq" "$out"
check_eq "one blob on the server" 1 "$(blobs | wc -l)"
line=$(t bob chat read "$C" | grep -F '[attachment')
check_eq "bob's chat read shows it" 1 "$(grep -c "^$seq"$'\t'".*\[attachment 700.0 KiB\] holiday$" <<<"$line")"
check "bob saves it" t bob chat save "$C" "$seq" "$work/saved.bin"
check "the same bytes" cmp "$work/photo.bin" "$work/saved.bin"
check "alice saves her own" t alice chat save "$C" "$seq" "$work/alice.bin"
check "alice's copy too" cmp "$work/photo.bin" "$work/alice.bin"
check_fails "a text message is no attachment" t bob chat save "$C" 1 "$work/x.bin"
check_eq "said so" 1 "$(grep -c '^error: not_attachment: ' "$work/last.err")"
check_fails "no such seq" t bob chat save "$C" 9999 "$work/x.bin"

# A blob altered on the server's disk: nothing written, an error line.
before=$(blobs)
head -c 200000 /dev/urandom >"$work/doc.bin"
out=$(t alice chat attach "$C" "$work/doc.bin")
seq2=$(grep -o '[0-9]*$' <<<"$out")
blob=$(comm -13 <(echo "$before") <(blobs))
check_eq "a second blob" 22 "${#blob}"
f="$work/data/blobs/$blob"
b=$(od -An -tu1 -j150000 -N1 "$f" | tr -d ' ')
printf "\\$(printf %03o $((b ^ 1)))" | dd of="$f" bs=1 seek=150000 conv=notrunc status=none
check_fails "tampered: chat save fails" t bob chat save "$C" "$seq2" "$work/doc.out"
check_eq "the error names it" 1 "$(grep -c '^error: tampered: ' "$work/last.err")"
check_eq "no file written" 0 "$(ls "$work" | grep -c '^doc\.out')"

# Over the server's 1 MiB limit.
head -c 2000000 /dev/urandom >"$work/big.bin"
before=$(blobs)
check_fails "over the limit" t alice chat attach "$C" "$work/big.bin"
check_eq "refused as too_large" 1 "$(grep -c '^error: too_large: ' "$work/last.err")"
check_eq "no blob kept" "$before" "$(blobs)"

# The low-level halves, and an empty file.
: >"$work/empty.bin"
d=$(t alice attach upload "$work/empty.bin")
check_eq "a descriptor" 1 "$(jq -r '.v' <<<"$d")"
check "bob downloads it" t bob attach download "$d" "$work/empty.out"
check "empty round trip" cmp "$work/empty.bin" "$work/empty.out"
check_fails "a malformed descriptor" t bob attach download '{"v":1}' "$work/bad.out"
summary chat_attach
