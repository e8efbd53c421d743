#!/bin/bash
# kill -9 a writer (100-key durable batches, prints each acked index) on a copy of the 1M store, reopen, verify acked keys.
cd "$(dirname "$0")"; D=$PWD/data
for e in f r; do
  B=./bench-fjall/target/release/bench-fjall; [ $e = r ] && B=./bench-redb/target/release/bench-redb
  for t in 3 0.7; do
    rm -rf $D/crash-$e; cp -a $D/1m-$e $D/crash-$e
    $B crashwriter $D/crash-$e 1000000 > $D/acks-$e.txt & pid=$!
    sleep $t; kill -9 $pid; wait $pid 2>/dev/null
    last=$(tail -n1 $D/acks-$e.txt); [ -z "$last" ] && last=1000000
    echo "== $B killed -9 after ${t}s, last acked index $last"
    $B verify $D/crash-$e 1000000 $last
    $B open $D/crash-$e 1000000 | tail -1
  done
done
