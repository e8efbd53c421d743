#!/bin/bash
# 1M keys: load (10k-key batches, one sync each), clean close, reopen x3 (open + first read), verify all.
cd "$(dirname "$0")"; D=$PWD/data
F=./bench-fjall/target/release/bench-fjall; R=./bench-redb/target/release/bench-redb
for e in f r; do
  B=$F; [ $e = r ] && B=$R
  rm -rf $D/1m-$e; echo "== $B"; $B load $D/1m-$e 1000000; du -sh $D/1m-$e
  for i in 1 2; do $B open $D/1m-$e; done
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null && { echo -n "cold cache: "; $B open $D/1m-$e; }
  $B open $D/1m-$e 1000000
done
