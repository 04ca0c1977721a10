"""Reference-book lookups per second: longest prefix match of E.164 numbers, in process.

Builds the default world table from the phonenumbers package (about 30,000
prefixes), then looks up numbers made from its own prefixes (padded to a
full length, so every lookup walks down from the longest candidate) and
random digit strings (mostly country-level hits). Prints the best of
``--rounds`` rounds.

Usage: ``.venv/bin/python -m bench.billing_lookup [--numbers 500000] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import os
import random
import time

from billing.refbook import PrefixTable, default_entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numbers", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    started = time.perf_counter()
    entries = default_entries()
    built = time.perf_counter() - started
    started = time.perf_counter()
    table = PrefixTable(entries)
    indexed = time.perf_counter() - started
    rng = random.Random(5)
    prefixes = [e.prefix for e in entries]
    numbers = []
    for i in range(args.numbers):
        if i % 4 == 3:
            numbers.append(str(rng.randint(10**10, 10**12 - 1)))
        else:
            prefix = rng.choice(prefixes)
            numbers.append(prefix + "".join(rng.choice("0123456789") for _ in range(max(3, 12 - len(prefix)))))
    lookup = table.lookup
    best = 0.0
    hits = 0
    for _ in range(args.rounds):
        started = time.perf_counter()
        hits = sum(1 for n in numbers if lookup(n) is not None)
        best = max(best, len(numbers) / (time.perf_counter() - started))
    print(f"default table: {len(table):,} prefixes, built from phonenumbers in {built:.2f} s, indexed in {indexed:.2f} s")
    print(f"lookups       : {best:12,.0f} per second (best of {args.rounds} rounds of {len(numbers):,}; "
          f"{hits / len(numbers):.1%} found)")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
