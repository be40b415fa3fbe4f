#!/bin/sh
# Cold builds of two code trees alternated on copies of one corpus, so both see the same
# machine: bench/ab_cold.sh OLD_TREE NEW_TREE CORPUS [RUNS]
# (a tree: a checkout, e.g. `git worktree add /tmp/base 8ecd5a8`; CORPUS: from bench/corpus.py)
set -eu
old=$1 new=$2 corpus=$3 runs=${4:-3}
python=$(dirname "$0")/../.venv/bin/python
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for v in old new; do cp -r "$corpus" "$work/$v"; done
i=1
while [ "$i" -le "$runs" ]; do
    for v in old new; do
        tree=$old; [ "$v" = new ] && tree=$new
        rm -rf "$work/$v/.krimppost" "$work/$v/outbox"; sync; sleep 5
        start=$(date +%s.%N)
        PYTHONPATH=$tree "$python" -m pipeline build --root "$work/$v" --now 2027-01-01T12:00 >/dev/null
        end=$(date +%s.%N)
        echo "$v run $i: $(echo "$end - $start" | bc) s, load $(cut -d' ' -f1 /proc/loadavg)"
    done
    i=$((i + 1))
done
