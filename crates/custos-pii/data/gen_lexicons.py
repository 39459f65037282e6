#!/usr/bin/env python3
"""Regenerate the name lexicons shipped in this directory.

Sources (both public, neither is Faker nor presidio-evaluator data):
  * US Census Bureau 1990 name frequency files (public domain, a work of the US
    government): dist.male.first, dist.female.first, dist.all.last. The PyPI package
    `names==0.3.0` ships them verbatim: `pip download --no-deps names==0.3.0`, unpack,
    and point CENSUS_DIR at its `names/` folder.
  * SCOWL word list as packaged by Debian `wamerican` (/usr/share/dict/american-english),
    used only to *flag* surnames that are also lowercase English words (Will, Rose, Young);
    no word list itself is shipped.

Usage: CENSUS_DIR=/path/to/names python3 gen_lexicons.py
"""
import os

census = os.environ.get("CENSUS_DIR", "names")
dict_path = os.environ.get("WORDS", "/usr/share/dict/american-english")
here = os.path.dirname(os.path.abspath(__file__))

def read(name):
    with open(os.path.join(census, name)) as f:
        return [line.split()[0].lower() for line in f if line.strip()]

first = sorted(set(read("dist.male.first") + read("dist.female.first")))
# Keep the 60k most frequent surnames: the tail is mostly transcription noise.
last = []
seen = set()
for n in read("dist.all.last")[:60000]:
    if len(n) >= 2 and n.isalpha() and n not in seen:
        seen.add(n)
        last.append(n)
last.sort()
lower_words = set()
with open(dict_path, encoding="utf-8", errors="ignore") as f:
    for w in f:
        w = w.strip()
        if w.isalpha() and w.islower():
            lower_words.add(w)
# First names that are everyday words in running text (hand-picked from first_names ∩ dictionary).
# Other first names that happen to be dictionary words ("john", "bob") are names far more often.
COMMON_FIRST = set("""
an in so my see many else man miss son sun moon star love hope faith grace joy will may mark bill
grant chase chance page major king queen prince princess lady guy rich long young lean rose spring
summer winter autumn august season liberty golden royal noble honey candy crystal diamond ruby
jade pearl amber angel art era echo delta alpha omega genesis nova sierra ivory forest glory harmony
melody mercy destiny trinity desire brain angle manual numbers marine meta sage sterling temple
velvet lane clay dawn            dot gay  hang hung
lien loan ping sang song soon sung wan wen yen hue ha ma pa mi nu min chi chin kit fern iris ivy
lily olive violet hazel holly heather  ginger sandy sunny windy misty stormy rocky rusty dusty
tiny precious    raven piper        
      van       carry marry coral china christen
conception earnest fairy garland junior karma lore marvel patience prudence randy rosy sparkle
sunshine tiara valentine viva yon abbey aide bee bell belle berry blossom brook brooks bunny buster
cherish cherry    dell dimple dolly emerald flora gala gale garnet genie heath jasmine
jewel kitty lacy laurel magnolia maple marina olive opal pansy pasty pinkie rosemary scarlet sherry
tawny tequila willow
""".split())
first_set = set(first)
common = sorted((COMMON_FIRST & (first_set | set(last))) | ((set(last) - first_set) & lower_words))

for fname, items in (("first_names.txt", first), ("surnames.txt", last), ("name_words.txt", common)):
    with open(os.path.join(here, fname), "w") as f:
        f.write("\n".join(items) + "\n")
    print(fname, len(items))
