#!/bin/bash
cd "$(dirname "$0")"; D=$PWD/data
F=./bench-fjall/target/release/bench-fjall; R=./bench-redb/target/release/bench-redb
for B in $F $R; do
  echo "== $B"; rm -rf $D/lock; $B load $D/lock 1000 >/dev/null
  $B lock $D/lock
  HOLD=1 $B lock $D/lock >/dev/null & sleep 1; echo -n "other process: "; $B open $D/lock; wait
done
# corruption: flip 4 KiB of garbage in the middle of the biggest data file / journal, then open + verify
corrupt() { # file offset-fraction
  sz=$(stat -c %s $1); off=$(( sz * $2 / 100 / 4096 ))
  dd if=/dev/urandom of=$1 bs=4096 seek=$off count=1 conv=notrunc status=none; }
echo "== fjall: garbage in middle of SST"; rm -rf $D/c; cp -a $D/1m-f $D/c; corrupt $D/c/keyspaces/1/tables/0 50; $F open $D/c 1000000
echo "== fjall: garbage in middle of journal"; rm -rf $D/c; cp -a $D/1m-f $D/c; corrupt $D/c/0.jnl 50; $F open $D/c 1000000
echo "== fjall: journal truncated mid-record (torn tail)"; rm -rf $D/c; cp -a $D/1m-f $D/c; truncate -s -37 $D/c/0.jnl; $F open $D/c 1000000
echo "== fjall: version file deleted"; rm -rf $D/c; cp -a $D/1m-f $D/c; rm $D/c/version; $F open $D/c 3
echo "== redb: garbage in middle of file"; rm -rf $D/c; cp -a $D/1m-r $D/c; corrupt $D/c/data.redb 50; $R open $D/c 1000000
echo "== redb: garbage in header (first 4K)"; rm -rf $D/c; cp -a $D/1m-r $D/c; corrupt $D/c/data.redb 0; $R open $D/c 3
echo "== redb: file truncated to half"; rm -rf $D/c; cp -a $D/1m-r $D/c; truncate -s $(( $(stat -c %s $D/c/data.redb) / 2 )) $D/c/data.redb; $R open $D/c 1000000
