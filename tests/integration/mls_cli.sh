#!/usr/bin/env bash
# Three members drive tessera-mls through create, add, join, messages both
# ways, update, remove and external join, for suites 1 and 3; every member
# must agree on epoch authenticators and exported secrets at every step.
# Then the same scenario mixed with the independent implementation in
# ../shared/peers (both directions), which proves wire compatibility.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${TSR_BUILD:-$root/build/asan}
work=$(mktemp -d)
trap 'for d in "$work"/*/; do [[ -S $d/sock ]] && "$peer" --state "$d" quit >/dev/null 2>&1; done; rm -rf "$work"' EXIT
. "$root/tests/integration/lib.bash"
ours=$build/tessera-mls
peer=$root/../shared/peers/mlspp-cli

# agree NAME DIR...: all members report one epoch, authenticator and export.
agree() {
  local name=$1 first=$2
  shift 2
  local ea ex ep
  ea=$("${tool[$first]}" --state "$work/$first" epoch-authenticator 2>/dev/null)
  ex=$("${tool[$first]}" --state "$work/$first" export --label tessera-test --context 0a0b --length 32 2>/dev/null)
  ep=$("${tool[$first]}" --state "$work/$first" epoch 2>/dev/null)
  for m in "$@"; do
    check_eq "$name epoch $m" "$ep" "$("${tool[$m]}" --state "$work/$m" epoch 2>/dev/null)"
    check_eq "$name authenticator $m" "$ea" "$("${tool[$m]}" --state "$work/$m" epoch-authenticator 2>/dev/null)"
    check_eq "$name exporter $m" "$ex" "$("${tool[$m]}" --state "$work/$m" export --label tessera-test --context 0a0b --length 32 2>/dev/null)"
  done
}

# say NAME FROM TO...: FROM protects a line, each TO unprotects it.
say() {
  local name=$1 from=$2
  shift 2
  local text="$name: hello from $from $RANDOM"
  printf '%s' "$text" >"$work/pt"
  check "$name protect" "${tool[$from]}" --state "$work/$from" protect --in "$work/pt" --out "$work/msg"
  for to in "$@"; do
    rm -f "$work/got"
    check "$name unprotect $to" "${tool[$to]}" --state "$work/$to" unprotect --in "$work/msg" --out "$work/got"
    check_eq "$name plaintext $to" "$text" "$(cat "$work/got" 2>/dev/null)"
  done
}

# scenario SUITE A B C: A creates, adds B; messages; update by B; A adds C
# (key package), C removed by B, C re-joins by external commit.
scenario() {
  local s=$1 a=$2 b=$3 c=$4 p="suite$1"
  check "$p keypackage $a" "${tool[$a]}" --state "$work/$a" --suite "$s" keypackage --identity "$a" --out "$work/$a.kp"
  check "$p keypackage $b" "${tool[$b]}" --state "$work/$b" --suite "$s" keypackage --identity "$b" --out "$work/$b.kp"
  check "$p keypackage $c" "${tool[$c]}" --state "$work/$c" --suite "$s" keypackage --identity "$c" --out "$work/$c.kp"
  check "$p create" "${tool[$a]}" --state "$work/$a" --suite "$s" create --group-id 74657373610$s
  check "$p add $b" "${tool[$a]}" --state "$work/$a" add --key-package "$work/$b.kp" --commit-out "$work/c1" --welcome-out "$work/w1"
  check "$p join $b" "${tool[$b]}" --state "$work/$b" join --welcome "$work/w1"
  agree "$p two" "$a" "$b"
  say "$p a->b" "$a" "$b"
  say "$p b->a" "$b" "$a"
  check "$p add $c" "${tool[$a]}" --state "$work/$a" add --key-package "$work/$c.kp" --commit-out "$work/c2" --welcome-out "$work/w2"
  check "$p $b process add" "${tool[$b]}" --state "$work/$b" process --in "$work/c2"
  check "$p join $c" "${tool[$c]}" --state "$work/$c" join --welcome "$work/w2"
  agree "$p three" "$a" "$b" "$c"
  say "$p c->all" "$c" "$a" "$b"
  check "$p update $b" "${tool[$b]}" --state "$work/$b" update --commit-out "$work/c3"
  check "$p $a process update" "${tool[$a]}" --state "$work/$a" process --in "$work/c3"
  check "$p $c process update" "${tool[$c]}" --state "$work/$c" process --in "$work/c3"
  agree "$p updated" "$a" "$b" "$c"
  say "$p a->all" "$a" "$b" "$c"
  check "$p remove $c" "${tool[$b]}" --state "$work/$b" remove --identity "$c" --commit-out "$work/c4"
  check "$p $a process remove" "${tool[$a]}" --state "$work/$a" process --in "$work/c4"
  agree "$p removed" "$a" "$b"
  say "$p b->a after remove" "$b" "$a"
  check "$p group-info" "${tool[$a]}" --state "$work/$a" group-info --out "$work/gi"
  rm -rf "${work:?}/$c.ext"
  tool[$c.ext]=${tool[$c]}
  check "$p external-join $c" "${tool[$c]}" --state "$work/$c.ext" --suite "$s" external-join --group-info "$work/gi" --identity "$c" --commit-out "$work/c5"
  check "$p $a process external" "${tool[$a]}" --state "$work/$a" process --in "$work/c5"
  check "$p $b process external" "${tool[$b]}" --state "$work/$b" process --in "$work/c5"
  agree "$p rejoined" "$a" "$b" "$c.ext"
  say "$p c->all after rejoin" "$c.ext" "$a" "$b"
}

declare -A tool
if [[ ! -x $ours ]]; then
  echo "tessera-mls not built at $ours"
  failed=1
  summary mls-cli
  exit 1
fi

for s in 1 3; do
  tool=([alice$s]=$ours [bob$s]=$ours [carol$s]=$ours)
  scenario "$s" "alice$s" "bob$s" "carol$s"
done

# Refusals: a replayed message, a forged one, a truncated one.
printf 'once' >"$work/pt"
"$ours" --state "$work/alice1" protect --in "$work/pt" --out "$work/m1" 2>/dev/null
check "replay: first delivery" "$ours" --state "$work/bob1" unprotect --in "$work/m1" --out "$work/got"
check_fails "replay refused" "$ours" --state "$work/bob1" unprotect --in "$work/m1" --out "$work/got"
"$ours" --state "$work/alice1" protect --in "$work/pt" --out "$work/m2" 2>/dev/null
cp "$work/m2" "$work/m2.forged"
printf '\x55' | dd of="$work/m2.forged" bs=1 seek=$(($(stat -c %s "$work/m2") - 5)) conv=notrunc 2>/dev/null
check_fails "forged refused" "$ours" --state "$work/bob1" unprotect --in "$work/m2.forged" --out "$work/got"
head -c 20 "$work/m2" >"$work/m2.short"
check_fails "truncated refused" "$ours" --state "$work/bob1" unprotect --in "$work/m2.short" --out "$work/got"
check "genuine still accepted" "$ours" --state "$work/bob1" unprotect --in "$work/m2" --out "$work/got"

# "-" is standard input and output, so the tool works in a pipe.
piped=$(printf 'through a pipe' | "$ours" --state "$work/alice1" protect --in - --out - |
  "$ours" --state "$work/bob1" unprotect --in - --out - 2>/dev/null)
check_eq "stdin/stdout pipe" "through a pipe" "$piped"

if [[ -x $peer ]]; then
  for s in 1 3; do
    tool=([ta$s]=$ours [pb$s]=$peer [tc$s]=$ours)
    scenario "$s" "ta$s" "pb$s" "tc$s"
    tool=([pa$s]=$peer [tb$s]=$ours [pc$s]=$peer)
    scenario "$s" "pa$s" "tb$s" "pc$s"
  done
else
  skip "interop: $peer not found"
fi

summary mls-cli
