#!/usr/bin/env python3
"""Per-token figures from a callgrind output file (bench/profile.sh callgrind).

usage: callgrind_per_token.py CALLGRIND_OUT TOKENS

Prints instructions per token, calls per token of the functions that say what a token costs
(allocator, system-call wrappers, clocks, timers, JSON parsing) and the top functions by
inclusive instructions per token. Calls are summed from the `calls=` lines, so they are exact
counts of what ran while collection was on.
"""
import re
import sys
from collections import defaultdict

# Name patterns (regular expressions over the demangled name) → label; a function counts under
# the first label that matches.
WATCH = [
    (r"^(malloc|__libc_malloc)$", "malloc"),
    (r"^(calloc|__libc_calloc)$", "calloc"),
    (r"^(realloc|__libc_realloc)$", "realloc"),
    (r"^(free|__libc_free|cfree)$", "free"),
    (r"^(__)?(send|sendto|__libc_sendto|__libc_send)$", "send/sendto"),
    (r"^(__)?(recv|recvfrom|__libc_recvfrom|__libc_recv)$", "recv/recvfrom"),
    (r"^(__)?(write|__libc_write)$", "write"),
    (r"^(__)?(writev|__libc_writev)$", "writev"),
    (r"^(__)?(read|__libc_read)$", "read"),
    (r"^(epoll_wait|__epoll_wait_nocancel|epoll_pwait)$", "epoll_wait"),
    (r"^syscall$", "syscall() (futex)"),
    (r"^(clock_gettime|__clock_gettime|__clock_gettime64)$", "clock_gettime"),
    (r"std::time::Instant::now$", "std Instant::now"),
    (r"tokio::time::instant::Instant::now$", "tokio Instant::now"),
    (r"tokio::runtime::time::entry::TimerEntry::reset$", "TimerEntry::reset"),
    (r"tokio::runtime::time::.*::reregister$", "timer driver reregister"),
    (r"tokio::runtime::time::entry::TimerEntry::cancel$", "TimerEntry::cancel"),
    (r"serde_json::de::from_str<", "serde_json::from_str"),
    (r"serde_json::de::from_slice<", "serde_json::from_slice"),
    (r"serde_json::ser::to_string<", "serde_json::to_string"),
    (r"serde_json::ser::to_writer<", "serde_json::to_writer"),
    (r"::wake_by_ref$|::wake$", "wake / wake_by_ref"),
]


def main():
    path, tokens = sys.argv[1], int(sys.argv[2])
    names = {}  # compressed id -> name
    self_cost = defaultdict(int)
    incl_calls = defaultdict(int)  # cost of calls made from fn (for inclusive)
    calls_to = defaultdict(int)
    total = 0
    fn = None
    cfn = None
    pending_calls = None

    def name_of(spec):
        m = re.match(r"\((\d+)\)(?: (.*))?", spec)
        if not m:
            return spec
        if m.group(2) is not None:
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), spec)

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("fn="):
                fn = name_of(line[3:])
            elif line.startswith("cfn="):
                cfn = name_of(line[4:])
            elif line.startswith("calls="):
                pending_calls = int(line[6:].split()[0])
            elif line.startswith(("summary:", "totals:")):
                total = max(total, int(line.split()[1]))
            elif line and (line[0].isdigit() or line[0] in "+-*"):
                parts = line.split()
                cost = int(parts[1]) if len(parts) > 1 else 0
                if pending_calls is not None:
                    calls_to[cfn] += pending_calls
                    if cfn != fn:
                        incl_calls[fn] += cost
                    pending_calls = None
                else:
                    self_cost[fn] += cost
            elif "=" in line:
                key = line.split("=", 1)[0]
                if key in ("fl", "fi", "fe", "ob", "cob", "cfi", "cfl"):
                    # File/object names are compressed too; only function names matter here.
                    pass

    total = total or sum(self_cost.values())
    print(f"instructions per token: {total / tokens:,.0f}")
    counted = defaultdict(int)
    for name, n in calls_to.items():
        for pattern, label in WATCH:
            if re.search(pattern, name):
                counted[label] += n
                break
    print("calls per token:")
    for _, label in WATCH:
        if label in counted:
            print(f"  {label:28} {counted[label] / tokens:8.2f}")
    inclusive = {fn: self_cost[fn] + incl_calls[fn] for fn in set(self_cost) | set(incl_calls)}
    print("top inclusive (instructions per token, name):")
    for fn, cost in sorted(inclusive.items(), key=lambda kv: -kv[1])[:40]:
        print(f"  {cost / tokens:10,.0f}  {fn[:150]}")
    print("top self (instructions per token, name):")
    for fn, cost in sorted(self_cost.items(), key=lambda kv: -kv[1])[:25]:
        print(f"  {cost / tokens:10,.0f}  {fn[:150]}")


if __name__ == "__main__":
    main()
