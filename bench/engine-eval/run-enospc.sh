#!/bin/bash
# ENOSPC on a 16 MiB tmpfs (mount needs root): filler leaves ~4 MiB, write 100-key durable batches until error,
# delete filler, retry on same handle, reopen, verify acked keys.
cd "$(dirname "$0")"; S=$PWD/small
mountpoint -q $S || { mkdir -p $S; mount -t tmpfs -o size=16m tmpfs $S; }
for B in ./bench-fjall/target/release/bench-fjall ./bench-redb/target/release/bench-redb; do
  rm -rf $S/*; fallocate -l 12M $S/filler
  echo "== $B"; timeout 60 $B enospc $S/db $S/filler 2>&1 | cut -c1-300; echo "exit $?"
done
