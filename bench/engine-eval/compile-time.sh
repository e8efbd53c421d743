#!/bin/bash
# Clean release build with -j1, wall time; crate count from cargo tree / Cargo.lock
cd "$(dirname "$0")"
for c in bench-fjall bench-redb; do
  (cd $c && cargo clean -q && cargo fetch -q)
  echo "== $c loadavg before: $(cat /proc/loadavg)"
  s=$(date +%s.%N)
  (cd $c && cargo build --release -j1 -q 2>&1 | grep -E '^(error|warning: unused)' )
  e=$(date +%s.%N)
  echo "$c: clean release -j1 build wall $(echo "$e - $s" | bc) s; loadavg after: $(cat /proc/loadavg)"
  echo "$c: packages in Cargo.lock (incl. itself): $(grep -c '^name = ' $c/Cargo.lock); unique in cargo tree -e normal: $(cd $c && cargo tree -e normal --prefix none | sed 's/ (\*)//' | sort -u | wc -l)"
  ls -la $c/target/release/$c | awk '{print "binary size", $5}'
done
