#!/usr/bin/env bash
# Usage: path-without.sh <command>...
# Prints a directory to use as PATH that offers every command on the current PATH except the named
# ones, as links. CI and test/demo.test.ts run the README's demo with it, to prove the demo works on
# a fresh machine that lacks the optional tools (curl, ping, ip) even when this machine has them.
# The caller removes the directory.
set -euo pipefail
dir=$(mktemp -d "${TMPDIR:-/tmp}/atoll-path-XXXXXX")
IFS=: read -ra path_dirs <<<"$PATH"
for path_dir in "${path_dirs[@]}"; do
  [ -d "$path_dir" ] || continue
  for file in "$path_dir"/*; do
    name=${file##*/}
    if [ -d "$file" ] || [ ! -x "$file" ] || [ -e "$dir/$name" ]; then continue; fi # the first on PATH wins, as in the shell
    for left_out in "$@"; do [ "$name" = "$left_out" ] && continue 2; done
    ln -s "$file" "$dir/$name"
  done
done
echo "$dir"
