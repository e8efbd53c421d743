#!/bin/bash
# 5 s runs, fresh directory each; durability per ack.
cd "$(dirname "$0")"; D=$PWD/data; mkdir -p $D
F=./bench-fjall/target/release/bench-fjall; R=./bench-redb/target/release/bench-redb
echo "loadavg: $(cat /proc/loadavg)"
./fsync-baseline/target/release/fsync-baseline $D 5
for m in data all; do
  rm -rf $D/f; echo -n "fjall SyncData=$m "; FJALL_SYNC=$m $F single $D/f 5
  rm -rf $D/f; echo -n "fjall SyncData=$m "; FJALL_SYNC=$m $F group $D/f 5 50
done
rm -rf $D/r; echo -n "redb "; $R single $D/r 5
rm -rf $D/r; echo -n "redb "; $R group $D/r 5 50
echo "loadavg: $(cat /proc/loadavg)"
