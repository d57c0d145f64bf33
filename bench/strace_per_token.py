#!/usr/bin/env python3
"""System calls per token from `strace -c` output (bench/profile.sh strace).

usage: strace_per_token.py STRACE_C_OUTPUT TOKENS
"""
import sys


def main():
    path, tokens = sys.argv[1], int(sys.argv[2])
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            # % time, seconds, usecs/call, calls, [errors], syscall
            if len(parts) >= 5 and parts[0].replace(".", "").isdigit() and parts[3].isdigit():
                errors = int(parts[4]) if len(parts) == 6 else 0
                rows.append((parts[-1], int(parts[3]), errors))
    total = sum(calls for name, calls, _ in rows if name != "total")
    print(f"system calls per token: {total / tokens:.2f}")
    for name, calls, errors in sorted(rows, key=lambda r: -r[1]):
        if name == "total":
            continue
        note = f"  ({errors / tokens:.2f} failed, e.g. EAGAIN)" if errors else ""
        print(f"  {name:18} {calls / tokens:8.3f}{note}")


if __name__ == "__main__":
    main()
