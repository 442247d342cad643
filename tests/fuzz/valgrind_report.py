#!/usr/bin/env python3
"""Read a valgrind memcheck log (--leak-check=full) and fail on what bnpy's code is to blame for.

    python tests/fuzz/valgrind_report.py VALGRIND_LOG

A record (one block of ==PID== lines separated by an empty ==PID== line) counts against bnpy when
any frame of its stack is in a bnpy ``_core*.so``:

- a "definitely lost" leak record: memory allocated (directly or through NumPy/CPython) from
  bnpy's C code and never freed nor reachable;
- any memory error (invalid read/write, use of uninitialised values, invalid free, ...).

Everything else is the interpreter's and NumPy's own noise, which valgrind reports without
suppressions under PYTHONMALLOC=malloc (static caches that CPython never frees, "possibly lost"
OpenMP thread stacks): it is counted and summarised, not failed. No suppression file is used, so
nothing from bnpy can be hidden by one. Exit status 1 when bnpy is to blame, 2 when the log
is unusable (no leak summary: valgrind did not finish).
"""

import re
import sys

RECORD_START = re.compile(r"^==\d+== (\S.*)$")
# A frame of bnpy's extension: its shared object (no debug info) or one of its csrc/ files (with -g;
# numpy's own numpy/_core/*.so never matches: a '/' follows its "_core").
CSRC_FILES = (
    "affine",
    "batchnorm",
    "conv",
    "conv_direct",
    "glue",
    "module",
    "pool",
    "py_batchnorm",
    "py_conv",
    "py_image",
    "threads",
)
CORE_FRAME = re.compile(
    r"bnpy/_core[^ /]*\.so|[(/ ](?:{})\.[ch]:\d+\)".format("|".join(CSRC_FILES))
)
ERROR_HEADS = (
    "Invalid read",
    "Invalid write",
    "Invalid free",
    "Mismatched free",
    "Conditional jump",
    "Use of uninitialised",
    "Syscall param",
    "Source and destination overlap",
    "Argument 'size' of function",
    "Invalid memory pool",
)


def records(lines):
    current = []
    for line in lines:
        m = re.match(r"^==\d+== ?(.*)$", line.rstrip("\n"))
        if not m:
            continue
        text = m.group(1)
        if not text.strip():
            if current:
                yield current
            current = []
        else:
            current.append(text)
    if current:
        yield current


def main(path):
    with open(path, errors="replace") as f:
        lines = f.readlines()
    blamed, noise = [], {"leak": 0, "error": 0}
    summary = []
    in_summary = False
    for rec in records(lines):
        head = rec[0]
        if head.startswith("LEAK SUMMARY"):
            in_summary = True
            summary = rec
            continue
        is_leak = "definitely lost in loss record" in head
        is_error = head.startswith(ERROR_HEADS)
        if not (is_leak or is_error):
            continue
        in_bnpy = any(CORE_FRAME.search(line) for line in rec[1:])
        if in_bnpy:
            blamed.append(rec)
        else:
            noise["leak" if is_leak else "error"] += 1
    errors_line = [line for line in lines if "ERROR SUMMARY" in line]
    print(
        "valgrind: {} definite-leak records and {} error records outside bnpy (interpreter/NumPy noise, "
        "not failed)".format(noise["leak"], noise["error"])
    )
    for line in summary:
        print("valgrind:   " + line)
    if errors_line:
        print("valgrind: " + errors_line[-1].split("== ", 1)[-1].strip())
    if not in_summary:
        print("valgrind: no LEAK SUMMARY in {}: the run did not finish".format(path))
        return 2
    if blamed:
        print("valgrind: {} records with a frame in bnpy's _core:".format(len(blamed)))
        for rec in blamed[:10]:
            print("\n".join("    " + line for line in rec))
            print()
        return 1
    print("valgrind: no definite leak and no memory error with a frame in bnpy's _core")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
