#!/usr/bin/env python3
"""Generate labelled synthetic call-centre conversations for EVALUATING the PII detector.

Each call is a list of AGENT / CUSTOMER turns written the way Amazon Connect Contact Lens
transcribes speech (sentences with punctuation, names capitalised, numbers mostly as digits but
sometimes spoken as words). Every turn carries the PII it contains as `entities` (Amazon
Comprehend type names) and a few hard non-PII spans as `negatives` (things a detector is likely
to flag by mistake). Offsets are Python str (code point) offsets into `text`, end exclusive.

Output: JSON Lines, one call per line:

    {"id": "eval-00001", "scenario": "card_issue",
     "turns": [{"role": "AGENT", "text": "...",
                "entities": [{"type": "NAME", "begin": 10, "end": 21}],
                "negatives": [{"kind": "ORDER_NUMBER", "begin": 5, "end": 17}]}]}

Labelling conventions (what a span covers):
  * NAME: a person's full name or a single first / last name as said; titles (Mr., Dr.) are left
    out; a spelled name ("S-T-I-L-E-S") is its own NAME span; names inside company or street names
    are not NAME.
  * ADDRESS: the whole address as said (number, street, unit, city, state, zip), or a partial one
    ("Tacoma, Washington"; a zip alone when it is given as the zip code). An address said over
    two turns is labelled in both.
  * Spoken numbers are labelled over their whole spoken span. A number split over two turns is
    labelled in both with the same type. A bare last-four answer gets the type the agent asked for
    in the previous turn.
  * DATE_TIME: dates of birth, appointment dates and times, relative days ("yesterday", "next
    Tuesday"), months ("in May" labels "May"), times of day. Card expiry dates are
    CREDIT_DEBIT_EXPIRY instead.
  * AGE: just the number ("45" in "I'm 45 years old").
Negative kinds:
  * NAME_WORD: a word that is also a first name in this script's list (will, may, grace, bill,
    hope, ...) used as an ordinary word. Found automatically in every turn outside other spans.
  * COMPANY: an organisation name that contains a first or last name ("Johnson Plumbing").
  * ORDER_NUMBER: order / ticket / tracking / case / claim / confirmation numbers, many shaped
    like phone numbers, SSNs or card numbers.
  * AMOUNT: money amounts ("$45.99", "forty dollars").

All lists and templates are hand-written here and deliberately independent of the detector's
name lists (crates/pii/data) and of any training-data generator.

Stdlib only. Deterministic: call i depends only on (--seed, i), so a larger --calls extends a
smaller run. Usage:

    generate_calls.py --seed 20261205 --calls 300 --out crates/pii/eval/heldout-calls.jsonl --stats
"""

from __future__ import annotations

import argparse
import calendar
import datetime as dt
import json
import re
import sys
from collections import Counter
from pathlib import Path
import random

# ----------------------------------------------------------------------------------------------
# Hand-written lists
# ----------------------------------------------------------------------------------------------

# name/gender (m, f, u = either); includes names that are ordinary English words.
_FIRST = """
James/m Robert/m Michael/m David/m Joseph/m Thomas/m Daniel/m Matthew/m Anthony/m Steven/m
Andrew/m Kevin/m Brian/m George/m Edward/m Timothy/m Jason/m Ryan/m Gary/m Eric/m Jonathan/m
Samuel/m Gregory/m Patrick/m Dennis/m Tyler/m Aaron/m Jose/m Nathan/m Henry/m Douglas/m Peter/m
Kyle/m Walter/m Ethan/m Harold/m Carl/m Keith/m Roger/m Sean/m Arthur/m Jesse/m Bruce/m Louis/m
Marcus/m Jamal/m Darnell/m Mateo/m Santiago/m Luis/m Arjun/m Rohan/m Deepak/m Wei/m Hiroshi/m
Kwame/m Chidi/m Yusuf/m Dmitri/m Bogdan/m Omar/m Tariq/m Minh/m Hamid/m Cedric/m Malik/m
Mary/f Patricia/f Jennifer/f Linda/f Elizabeth/f Barbara/f Susan/f Jessica/f Sarah/f Karen/f
Nancy/f Lisa/f Betty/f Margaret/f Sandra/f Ashley/f Kimberly/f Emily/f Donna/f Michelle/f
Carol/f Amanda/f Melissa/f Deborah/f Stephanie/f Rebecca/f Laura/f Sharon/f Cynthia/f
Kathleen/f Amy/f Angela/f Brenda/f Nicole/f Samantha/f Katherine/f Christine/f Rachel/f
Heather/f Diane/f Julie/f Olivia/f Priya/f Ananya/f Lakshmi/f Mei/f Yuki/f Anh/f Fatima/f
Aaliyah/f Imani/f Ngozi/f Siobhan/f Ximena/f Svetlana/f Keisha/f Latoya/f Esperanza/f
Guadalupe/f Beatriz/f Ingrid/f Noor/f Leilani/f Tamika/f
Will/m Bill/m Mark/m Jack/m Ray/m Frank/m Drew/m Art/m Chase/m Hunter/m
Grace/f May/f June/f April/f Hope/f Rose/f Joy/f Faith/f Dawn/f Summer/f Iris/f Ivy/f Penny/f
Sue/f Holly/f Autumn/f Pat/u Robin/u Sunny/u
Jordan/u Taylor/u Morgan/u Casey/u Jamie/u Alex/u Riley/u Avery/u Quinn/u Cameron/u Dana/u
"""
FIRST_NAMES = [tuple(x.split("/")) for x in _FIRST.split()]

# First names that are also ordinary English words; their plain-word uses become NAME_WORD
# negatives. Months (April, May, June) are only ever used as months inside DATE_TIME spans.
WORD_FIRST_NAMES = ["Will", "Bill", "Mark", "Jack", "Ray", "Frank", "Drew", "Art", "Chase",
                    "Hunter", "Grace", "May", "June", "April", "Hope", "Rose", "Joy", "Faith",
                    "Dawn", "Summer", "Iris", "Ivy", "Penny", "Sue", "Holly", "Autumn", "Pat",
                    "Robin", "Sunny"]

_LAST = """
Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez
Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris
Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill
Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips Evans
Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers Ortiz
Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks
Chavez Wood Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross
Foster Jimenez Powell Jenkins Perry Russell Sullivan Bell Coleman Butler Henderson Barnes Fisher
Vasquez Simmons Romero Patterson Hamilton Graham Reynolds Griffin Wallace West Cole Hayes Bryant
Herrera Gibson Ellis Tran Medina Stevens Murray Ford Marshall Owens Harrison Fernandez Woods
Washington Kennedy Wells Vargas Chen Freeman Webb Tucker Burns Crawford Olson Porter Gordon Shaw
Snyder Mason Dixon Hunt Holmes Palmer Wagner Black Stone Fox Warren Mills Meyer Rice Schmidt
Franklin Lincoln Stiles Okafor Adeyemi Kowalski Novak Yamamoto Tanaka Singh Sharma Iyer Haddad
Nasser Lindqvist Oyelaran Abernathy Kaczmarek Featherstone Delacroix Villanueva Takahashi
"""
LAST_NAMES = _LAST.split()

AGENT_NAMES = ["Priya", "Marcus", "Alicia", "Devon", "Keisha", "Tom", "Rosa", "Ahmed", "Lena",
               "Carlos", "Brianna", "Nate", "Mei", "Jorge", "Tasha", "Ben", "Farah", "Derek",
               "Sofia", "Kenji", "Monique", "Eli", "Grace", "Will", "Hope", "Jack", "June",
               "Dominic", "Valeria", "Trevor", "Aisha", "Colin", "Renee", "Omar", "Yolanda",
               "Brett", "Nadia", "Luke", "Joy", "Rashid"]

# city, state, abbreviation, zip prefix, area code
CITIES = [
    ("Seattle", "Washington", "WA", "981", "206"), ("Tacoma", "Washington", "WA", "984", "253"),
    ("Spokane", "Washington", "WA", "992", "509"), ("Portland", "Oregon", "OR", "972", "503"),
    ("Eugene", "Oregon", "OR", "974", "541"), ("Boise", "Idaho", "ID", "837", "208"),
    ("San Diego", "California", "CA", "921", "619"), ("Sacramento", "California", "CA", "958", "916"),
    ("Fresno", "California", "CA", "937", "559"), ("Oakland", "California", "CA", "946", "510"),
    ("Phoenix", "Arizona", "AZ", "850", "602"), ("Tucson", "Arizona", "AZ", "857", "520"),
    ("Denver", "Colorado", "CO", "802", "303"), ("Austin", "Texas", "TX", "787", "512"),
    ("Houston", "Texas", "TX", "770", "713"), ("El Paso", "Texas", "TX", "799", "915"),
    ("Albuquerque", "New Mexico", "NM", "871", "505"), ("Salt Lake City", "Utah", "UT", "841", "801"),
    ("Las Vegas", "Nevada", "NV", "891", "702"), ("Omaha", "Nebraska", "NE", "681", "402"),
    ("Lincoln", "Nebraska", "NE", "685", "402"), ("Kansas City", "Missouri", "MO", "641", "816"),
    ("St. Louis", "Missouri", "MO", "631", "314"), ("Minneapolis", "Minnesota", "MN", "554", "612"),
    ("Madison", "Wisconsin", "WI", "537", "608"), ("Chicago", "Illinois", "IL", "606", "312"),
    ("Springfield", "Illinois", "IL", "627", "217"), ("Indianapolis", "Indiana", "IN", "462", "317"),
    ("Columbus", "Ohio", "OH", "432", "614"), ("Cleveland", "Ohio", "OH", "441", "216"),
    ("Detroit", "Michigan", "MI", "482", "313"), ("Louisville", "Kentucky", "KY", "402", "502"),
    ("Nashville", "Tennessee", "TN", "372", "615"), ("Memphis", "Tennessee", "TN", "381", "901"),
    ("Atlanta", "Georgia", "GA", "303", "404"), ("Savannah", "Georgia", "GA", "314", "912"),
    ("Charlotte", "North Carolina", "NC", "282", "704"), ("Raleigh", "North Carolina", "NC", "276", "919"),
    ("Richmond", "Virginia", "VA", "232", "804"), ("Baltimore", "Maryland", "MD", "212", "410"),
    ("Pittsburgh", "Pennsylvania", "PA", "152", "412"), ("Buffalo", "New York", "NY", "142", "716"),
    ("Boston", "Massachusetts", "MA", "021", "617"), ("Hartford", "Connecticut", "CT", "061", "860"),
    ("Portland", "Maine", "ME", "041", "207"), ("Miami", "Florida", "FL", "331", "305"),
    ("Tampa", "Florida", "FL", "336", "813"), ("Jacksonville", "Florida", "FL", "322", "904"),
    ("New Orleans", "Louisiana", "LA", "701", "504"), ("Birmingham", "Alabama", "AL", "352", "205"),
    ("Tulsa", "Oklahoma", "OK", "741", "918"), ("Des Moines", "Iowa", "IA", "503", "515"),
    ("Fargo", "North Dakota", "ND", "581", "701"), ("Billings", "Montana", "MT", "591", "406"),
    ("Anchorage", "Alaska", "AK", "995", "907"), ("Honolulu", "Hawaii", "HI", "968", "808"),
    ("Charleston", "South Carolina", "SC", "294", "843"), ("Jackson", "Mississippi", "MS", "392", "601"),
]

STREET_NAMES = ["Maple", "Oak", "Cedar", "Pine", "Elm", "Birch", "Willow", "Johnson", "Lincoln",
                "Washington", "Jefferson", "Franklin", "Grant", "Rose", "Park", "Lake", "Hill",
                "Sunset", "Ridge", "Meadow", "Main", "Church", "Mill", "River", "Highland",
                "Spring", "Walnut", "Chestnut", "Hawthorne", "Madison", "Adams", "Baker",
                "Harrison", "Taylor", "Kelly", "Summit", "Orchard", "Forest", "Valley", "Harbor",
                "Sycamore", "Magnolia", "Dogwood", "Aspen", "Juniper", "Holly", "Laurel", "Brook"]
STREET_TYPES = ["Street", "Avenue", "Road", "Drive", "Lane", "Court", "Boulevard", "Way", "Place",
                "Terrace", "Circle", "Parkway"]
DIRECTIONS = ["North", "South", "East", "West", "Northeast", "Northwest", "Southeast", "Southwest"]

EMAIL_DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "aol.com",
                 "comcast.net", "att.net", "proton.me", "msn.com", "live.com", "verizon.net"]

ORGS = {
    "bank": ["Wells Fargo", "Harbor National Bank", "Summit Federal Credit Union",
             "Cascade Community Bank", "Morgan Savings and Loan", "First Keystone Bank",
             "Bennett Trust Bank", "Evergreen Card Services", "Hamilton Federal Credit Union"],
    "merchant": ["Johnson Plumbing", "Carter Auto Body", "Patel Pharmacy", "Green Valley Grocers",
                 "Sullivan's Hardware", "Reed's Bakery", "Hughes Electric", "Turner Landscaping",
                 "the Corner Bistro", "QuickFuel", "Marshall Furniture", "Dixon Pet Supply",
                 "Fisher Sporting Goods", "Tran Noodle House", "Garcia Tire and Auto",
                 "Howard Cinemas", "Brooks Hardware", "Webb Florist", "Bright Basket"],
    "insurance": ["Miller Insurance", "Hamilton Mutual", "Lighthouse Insurance Group",
                  "Foster and Kelly Insurance", "Graham Life and Health", "Northstar Auto Insurance"],
    "clinic": ["Nguyen Family Dental", "Riverside Medical Group", "Patel Pediatrics",
               "Bennett Family Clinic", "Northgate Eye Care", "Coleman Physical Therapy",
               "Greenway Urgent Care", "Okafor Family Medicine"],
    "isp": ["Summit Broadband", "Brooks Fiber", "ClearWave Internet", "Meyer Cable and Internet",
            "Horizon Net", "Porter Communications"],
    "retail": ["Parker Outdoor Supply", "Home Nest", "Pacific Outfitters", "Walker Electronics",
               "Cole and Rivers Books", "Bright Basket", "Sanders Kitchen Supply"],
    "travel": ["Skyline Airways", "Harrison Travel", "Blue Horizon Airlines", "Coastal Cruise Lines",
               "Morris Travel Group", "Westwind Air"],
    "dmv": ["the Department of Licensing", "the DMV", "the Department of Motor Vehicles",
            "the Motor Vehicle Division"],
    "tax": ["Hughes Tax Services", "Bennett Payroll", "the state Department of Revenue",
            "Hamilton and Reed Accounting", "Lopez Tax and Bookkeeping", "ClearPath Payroll"],
    "utility": ["Pacific Power and Light", "Franklin Water Utility", "Wallace Energy", "Metro Gas",
                "Clearline Wireless", "Jenkins Mobile", "Bright Valley Electric"],
    "employer": ["Johnson Plumbing", "Miller Insurance", "Wells Fargo", "Carter Auto Body",
                 "Baker Construction", "Hughes Electric", "the school district", "the hospital",
                 "Stewart Logistics", "Ramirez Landscaping", "a warehouse downtown"],
}

PASSWORD_WORDS = ["Blue", "Fox", "River", "Tiger", "Maple", "Sunset", "Cobalt", "Falcon", "Pepper",
                  "Harbor", "Lemon", "Orbit", "Copper", "Thunder", "Velvet", "Cactus", "Nimbus",
                  "Pickle", "Comet", "Granite", "Walrus", "Mango", "Rocket", "Jazz"]
MONTHS = list(calendar.month_name)[1:]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
REF_DATE = dt.date(2025, 11, 14)  # the "today" of every call, for ages

# ----------------------------------------------------------------------------------------------
# Spans and rendering
# ----------------------------------------------------------------------------------------------


class L:
    """A labelled piece of text: an entity (etype) or a negative (nkind)."""

    __slots__ = ("text", "etype", "nkind")

    def __init__(self, text, etype=None, nkind=None):
        assert text and text == text.strip(), repr(text)
        self.text, self.etype, self.nkind = text, etype, nkind


def E(etype, text):
    return L(text, etype=etype)


def N(kind, text):
    return L(text, nkind=kind)


SLOT = re.compile(r"\{(\w+)\}")
NAME_WORD_RE = re.compile(r"\b(" + "|".join(w.lower() for w in WORD_FIRST_NAMES) + r")\b",
                          re.IGNORECASE)
NAME_TOKENS = {n for n, _ in FIRST_NAMES} | set(LAST_NAMES)


def org(name):
    """An organisation mention: a COMPANY negative when it contains a name, else plain text."""
    toks = re.findall(r"[A-Z][a-z]+", name.replace("'s", ""))
    if any(t in NAME_TOKENS for t in toks):
        # keep a leading "the" or "Dr." outside the span
        m = re.match(r"^(the |Dr\. )?(.*)$", name)
        pre, core = m.group(1) or "", m.group(2)
        return [pre, N("COMPANY", core)] if pre else N("COMPANY", core)
    return name


def render(role, tpl, slots):
    parts, ents, negs = [], [], []
    pos = 0

    def emit(v):
        nonlocal pos
        if v is None or v == "":
            return
        if isinstance(v, str):
            if v.startswith(".") and parts and parts[-1].endswith("."):
                v = v[1:]
                if not v:
                    return
            parts.append(v)
            pos += len(v)
        elif isinstance(v, L):
            b = pos
            t = v.text
            sentence_start = not parts or re.search(r"[.?!]\s$", parts[-1])
            if sentence_start and t[0].islower() and v.etype not in ("USERNAME", "PASSWORD", "URL", "EMAIL"):
                t = t[0].upper() + t[1:]
            parts.append(t)
            pos += len(t)
            if v.etype:
                ents.append((v.etype, b, pos, t))
            else:
                negs.append((v.nkind, b, pos, t))
        elif isinstance(v, (list, tuple)):
            for x in v:
                emit(x)
        else:
            raise TypeError(type(v))

    last = 0
    for m in SLOT.finditer(tpl):
        emit(tpl[last:m.start()])
        key = m.group(1)
        if key not in slots:
            raise KeyError(f"slot {key!r} in template {tpl!r}")
        emit(slots[key])
        last = m.end()
    emit(tpl[last:])
    text = "".join(parts)
    assert "{" not in text and "}" not in text, text
    for (_, b, e, v) in ents + negs:
        assert text[b:e] == v, (text, b, e, v)
    taken = [(b, e) for (_, b, e, _) in ents + negs]
    for m in NAME_WORD_RE.finditer(text):
        if not any(m.start() < e and b < m.end() for b, e in taken):
            negs.append(("NAME_WORD", m.start(), m.end(), m.group(0)))
    spans = sorted((b, e) for (_, b, e, _) in ents + negs)
    for (b1, e1), (b2, e2) in zip(spans, spans[1:]):
        assert e1 <= b2, ("overlap", text, spans)
    return {
        "role": role,
        "text": text,
        "entities": [{"type": t, "begin": b, "end": e} for (t, b, e, _) in sorted(ents, key=lambda x: x[1])],
        "negatives": [{"kind": k, "begin": b, "end": e} for (k, b, e, _) in sorted(negs, key=lambda x: x[1])],
    }


# ----------------------------------------------------------------------------------------------
# Numbers, words and values
# ----------------------------------------------------------------------------------------------

ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen").split()
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
ORD_WORDS = ["", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
             "ninth", "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth",
             "sixteenth", "seventeenth", "eighteenth", "nineteenth", "twentieth"]


def words(n):
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else "-" + ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + words(rest))
    rest = n % 1000
    return words(n // 1000) + " thousand" + ("" if rest == 0 else " " + words(rest))


def ord_word(n):
    if n <= 20:
        return ORD_WORDS[n]
    if n % 10 == 0:
        return TENS[n // 10][:-1] + "ieth"
    return TENS[n // 10] + "-" + ORD_WORDS[n % 10]


def ord_sfx(n):
    if 10 <= n % 100 <= 20:
        return f"{n}th"
    return f"{n}" + {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def year_words(y):
    if 2000 <= y < 2010:
        return "two thousand" + ("" if y == 2000 else " " + ONES[y % 10])
    hi, lo = divmod(y, 100)
    if lo == 0:
        return words(hi) + " hundred"
    return words(hi) + " " + (("oh " + ONES[lo]) if lo < 10 else words(lo))


def spoken(groups, oh=False):
    """Digit groups read one digit at a time, groups separated by commas."""
    dw = lambda d: "oh" if (d == "0" and oh) else ONES[int(d)]
    return ", ".join(" ".join(dw(d) for d in g) for g in groups)


def digits(r, n):
    return "".join(r.choice("0123456789") for _ in range(n))


def luhn_digit(body):
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_ok(num):
    return luhn_digit(num[:-1]) == num[-1]


def aba_ok(num):
    w = [3, 7, 1] * 3
    return len(num) == 9 and sum(int(a) * b for a, b in zip(num, w)) % 10 == 0


def group_sizes(n):
    return [4, 6, 5] if n == 15 else [4, 4, 4, 4]


def split_groups(s, sizes):
    out, i = [], 0
    for k in sizes:
        out.append(s[i:i + k])
        i += k
    return out


def house_words(n):
    s = str(n)
    if n < 100:
        return words(n)
    if len(s) == 3:
        lo = n % 100
        return ONES[n // 100] + " " + (("oh " + ONES[lo]) if lo < 10 else words(lo))
    if len(s) == 4:
        hi, lo = divmod(n, 100)
        if lo == 0:
            return words(hi) + " hundred"
        return words(hi) + " " + (("oh " + ONES[lo]) if lo < 10 else words(lo))
    return " ".join(ONES[int(d)] for d in s)


def spell(name, r):
    letters = [ch.upper() for ch in name if ch.isalpha()]
    style = r.random()
    if style < 0.65:
        return "-".join(letters)
    return " ".join(letters)


# ----------------------------------------------------------------------------------------------
# The customer
# ----------------------------------------------------------------------------------------------


class Person:
    def __init__(self, r):
        # a third of customers carry a name that is also a word, to exercise NAME vs NAME_WORD
        if r.random() < 0.3:
            name = r.choice(WORD_FIRST_NAMES)
            self.first, self.gender = next((n, g) for n, g in FIRST_NAMES if n == name)
        else:
            self.first, self.gender = r.choice(FIRST_NAMES)
        self.last = r.choice(LAST_NAMES)
        y = r.randint(1942, 2004)
        m = r.randint(1, 12)
        d = r.randint(1, calendar.monthrange(y, m)[1])
        self.dob = dt.date(y, m, d)
        self.age = REF_DATE.year - y - ((REF_DATE.month, REF_DATE.day) < (m, d))
        self.city = r.choice(CITIES)
        self.house = r.choice([r.randint(10, 99), r.randint(100, 999), r.randint(1000, 9999),
                               r.randint(1000, 9999), r.randint(10000, 24999)])
        if r.random() < 0.2:
            self.street = f"{r.choice(DIRECTIONS)} {ord_sfx(r.randint(1, 150))} {r.choice(STREET_TYPES[:3])}"
        else:
            self.street = f"{r.choice(STREET_NAMES)} {r.choice(STREET_TYPES)}"
        self.unit = r.choice(["", "", "", f"Apartment {r.randint(1, 40)}{r.choice('ABCD')}",
                              f"Unit {r.randint(1, 300)}", f"Apt {r.randint(100, 999)}",
                              f"Suite {r.randint(1, 9)}00"])
        self.zip = self.city[3] + digits(r, 2)
        area = self.city[4] if r.random() < 0.7 else r.choice([c[4] for c in CITIES])
        if r.random() < 0.15:
            self.phone = (area, "555", "01" + digits(r, 2))
        else:
            self.phone = (area, str(r.randint(2, 9)) + digits(r, 2), digits(r, 4))
        while True:
            a = r.randint(1, 899)
            if a != 666:
                break
        self.ssn = (f"{a:03d}", f"{r.randint(1, 99):02d}", f"{r.randint(1, 9999):04d}")
        # card
        k = r.random()
        if k < 0.45:
            prefix, n = "4" + digits(r, 5), 16
        elif k < 0.72:
            prefix, n = str(r.randint(51, 55)) + digits(r, 4), 16
        elif k < 0.82:
            prefix, n = "6011" + digits(r, 2), 16
        else:
            prefix, n = r.choice(["34", "37"]) + digits(r, 4), 15
        body = prefix + digits(r, n - 1 - len(prefix))
        self.card = body + luhn_digit(body)
        assert luhn_ok(self.card)
        self.exp = (r.randint(1, 12), r.randint(26, 31))
        self.cvv = digits(r, 4 if n == 15 else 3)
        pre = r.choice([f"{x:02d}" for x in list(range(1, 13)) + list(range(21, 33))])
        body = pre + digits(r, 6)
        w = [3, 7, 1, 3, 7, 1, 3, 7]
        self.routing = body + str((10 - sum(int(a) * b for a, b in zip(body, w)) % 10) % 10)
        assert aba_ok(self.routing)
        self.account = str(r.randint(1, 9)) + digits(r, r.choice([7, 9, 9, 10, 11]))
        self.pin = digits(r, r.choice([4, 4, 4, 6]))
        fl, ll = self.first.lower(), self.last.lower()
        yy = f"{self.dob.year % 100:02d}"
        self.email_local = r.choice([f"{fl}.{ll}", f"{fl}{ll}", f"{fl[0]}{ll}{r.randint(1, 99)}",
                                     f"{fl}_{ll}{yy}", f"{fl}{yy}", f"{ll}.{fl}", f"{fl}.{ll}{r.randint(1, 9)}"])
        self.email_domain = r.choice(EMAIL_DOMAINS)
        self.username = r.choice([f"{fl[0]}{ll}_{r.randint(1, 99)}", f"{fl}_{r.randint(10, 999)}",
                                  f"{fl}.{ll[0]}{yy}", f"{ll}{fl[0]}{r.randint(1, 9)}",
                                  f"{fl}{ll[:3]}{yy}", f"the_real_{fl}"])
        pw = r.random()
        w1, w2 = r.sample(PASSWORD_WORDS, 2)
        if pw < 0.4:
            self.password = f"{w1}-{w2}-{r.randint(10, 99)}{r.choice('!?#$')}"
        elif pw < 0.7:
            self.password = f"{w1}{r.choice('#@$')}{r.randint(1000, 9999)}"
        else:
            self.password = f"{w1.lower()}{w2}{r.randint(1, 99)}{r.choice('!*')}"
        if r.random() < 0.5:
            self.passport = r.choice("ACEGHJKLNPRX") + digits(r, 8)
        else:
            self.passport = str(r.randint(1, 9)) + digits(r, 8)
        dk = r.random()
        if dk < 0.35:
            self.driver = r.choice("ABCDEFGHJKLMNPRSTVWY") + digits(r, 7)
        elif dk < 0.6:
            self.driver = "WDL" + "".join(r.choice("ABCDEFGHJKLMNPQRSTVWXYZ0123456789") for _ in range(6))
        elif dk < 0.8:
            self.driver = r.choice("ABCDEFGHJKLMNPRSTVWY") + digits(r, 12)
        else:
            self.driver = str(r.randint(1, 9)) + digits(r, 8)
        # relatives
        sp_first, sp_gender = r.choice(FIRST_NAMES)
        self.spouse = sp_first
        self.spouse_role = {"m": "husband", "f": "wife", "u": "partner"}[sp_gender]
        kid, kg = r.choice(FIRST_NAMES)
        self.kid = kid
        self.kid_role = {"m": "son", "f": "daughter", "u": "kid"}[kg]
        self.kid_age = r.randint(2, 17)


# ----------------------------------------------------------------------------------------------
# The call
# ----------------------------------------------------------------------------------------------


class Call:
    def __init__(self, r, scenario, orgs):
        self.r = r
        self.scenario = scenario
        self.p = p = Person(r)
        self.turns = []
        self.agent_known = False
        self.agent_name = r.choice(AGENT_NAMES)
        self.org_name = r.choice(ORGS[orgs])
        if p.gender in "mf" and r.random() < 0.7:
            title = "Mr. " if p.gender == "m" else r.choice(["Ms. ", "Ms. ", "Mrs. "])
            formal = [title, E("NAME", p.last)]
        else:
            formal = E("NAME", p.first)
        self.slots = {
            "first": E("NAME", p.first),
            "last": E("NAME", p.last),
            "full": E("NAME", f"{p.first} {p.last}"),
            "formal": formal,
            "agent": E("NAME", self.agent_name),
            "org": org(self.org_name),
            "Org": org(self.org_name[0].upper() + self.org_name[1:]),
            "spouse": E("NAME", p.spouse),
            "spouse_full": E("NAME", f"{p.spouse} {p.last}"),
            "spouse_role": p.spouse_role,
            "kid": E("NAME", p.kid),
            "kid_role": p.kid_role,
            "kid_age": E("AGE", str(p.kid_age)),
            "age": E("AGE", str(p.age)),
        }

    # -- plumbing
    def pick(self, xs):
        return self.r.choice(xs)

    def chance(self, p):
        return self.r.random() < p

    def say(self, role, tpl, **kw):
        if isinstance(tpl, list):
            if not self.agent_known and role == "CUSTOMER":
                tpl = [t for t in tpl if "{agent}" not in t] or tpl
            tpl = self.r.choice(tpl)
        if role == "AGENT" and "{agent}" in tpl:
            self.agent_known = True
        slots = dict(self.slots)
        slots.update(kw)
        turn = render(role, tpl, slots)
        prev = self.turns[-1] if self.turns else None
        if prev and prev["role"] == role and self.r.random() < 0.8:
            # one speaker going on: usually one transcript segment, sometimes two
            off = len(prev["text"]) + 1
            prev["text"] += " " + turn["text"]
            for key in ("entities", "negatives"):
                for sp in turn[key]:
                    sp["begin"] += off
                    sp["end"] += off
                    prev[key].append(sp)
        else:
            self.turns.append(turn)

    def A(self, tpl, **kw):
        self.say("AGENT", tpl, **kw)

    def C(self, tpl, **kw):
        self.say("CUSTOMER", tpl, **kw)

    # -- values
    def phone(self, style=None):
        a, x, l = self.p.phone
        style = style or self.r.choices(
            ["dash", "paren", "space", "plus", "plain", "spoken", "dot"],
            [30, 20, 15, 8, 10, 14, 3])[0]
        text = {
            "dash": f"{a}-{x}-{l}", "paren": f"({a}) {x}-{l}", "space": f"{a} {x} {l}",
            "plus": f"+1 {a} {x} {l}", "plain": f"{a}{x}{l}", "dot": f"{a}.{x}.{l}",
        }.get(style) or spoken([a, x, l], oh=self.chance(0.5))
        return E("PHONE", text)

    def ssn(self, style=None):
        a, g, s = self.p.ssn
        style = style or self.r.choices(["dash", "space", "plain", "spoken"], [45, 20, 15, 20])[0]
        text = {"dash": f"{a}-{g}-{s}", "space": f"{a} {g} {s}", "plain": f"{a}{g}{s}"}.get(style) \
            or spoken([a, g, s], oh=self.chance(0.3))
        return E("SSN", text)

    def card(self, style=None):
        c = self.p.card
        gs = split_groups(c, group_sizes(len(c)))
        style = style or self.r.choices(["space", "dash", "plain", "spoken"], [45, 15, 20, 20])[0]
        text = {"space": " ".join(gs), "dash": "-".join(gs), "plain": c}.get(style) or spoken(gs)
        return E("CREDIT_DEBIT_NUMBER", text)

    def card_halves(self):
        c = self.p.card
        gs = split_groups(c, group_sizes(len(c)))
        h1, h2 = gs[:2], gs[2:]
        if self.chance(0.3):
            return E("CREDIT_DEBIT_NUMBER", spoken(h1)), E("CREDIT_DEBIT_NUMBER", spoken(h2))
        sep = self.pick([" ", " ", ""])
        return E("CREDIT_DEBIT_NUMBER", sep.join(h1)), E("CREDIT_DEBIT_NUMBER", sep.join(h2))

    def expiry(self):
        m, y = self.p.exp
        text = self.r.choice([f"{m:02d}/{y}", f"{m}/{y}", f"{m:02d}/20{y}", f"{MONTHS[m - 1]} 20{y}",
                              f"{MONTHS[m - 1]} of 20{y}",
                              f"{'oh ' + ONES[m] if m < 10 else words(m)} {words(y)}"])
        return E("CREDIT_DEBIT_EXPIRY", text)

    def cvv(self):
        c = self.p.cvv
        return E("CREDIT_DEBIT_CVV", c if self.chance(0.75) else spoken([c]))

    def routing(self):
        rt = self.p.routing
        return E("BANK_ROUTING", rt if self.chance(0.8) else spoken([rt[:3], rt[3:6], rt[6:]]))

    def account(self):
        ac = self.p.account
        return E("BANK_ACCOUNT_NUMBER", ac if self.chance(0.8) else spoken([ac]))

    def account_halves(self):
        ac = self.p.account
        k = len(ac) // 2
        if self.chance(0.3):
            return E("BANK_ACCOUNT_NUMBER", spoken([ac[:k]])), E("BANK_ACCOUNT_NUMBER", spoken([ac[k:]]))
        return E("BANK_ACCOUNT_NUMBER", ac[:k]), E("BANK_ACCOUNT_NUMBER", ac[k:])

    def pin(self):
        pn = self.p.pin
        return E("PIN", pn if self.chance(0.7) else spoken([pn]))

    def last4(self, etype):
        src = {"SSN": self.p.ssn[2], "CREDIT_DEBIT_NUMBER": self.p.card[-4:],
               "BANK_ACCOUNT_NUMBER": self.p.account[-4:], "PHONE": self.p.phone[2]}[etype]
        return E(etype, src if self.chance(0.7) else spoken([src], oh=self.chance(0.5)))

    def dob(self):
        d = self.p.dob
        mn = MONTHS[d.month - 1]
        text = self.r.choice([
            f"{mn} {d.day}, {d.year}", f"{mn} {ord_sfx(d.day)}, {d.year}", f"{d.month}/{d.day}/{d.year}",
            f"{d.month:02d}/{d.day:02d}/{d.year}", f"the {ord_sfx(d.day)} of {mn}, {d.year}",
            f"{mn} {ord_word(d.day)}, {year_words(d.year)}", f"{d.month}/{d.day}/{d.year % 100:02d}",
        ])
        return E("DATE_TIME", text)

    def address(self, mode="full"):
        p = self.p
        city, state, abbr = p.city[0], p.city[1], p.city[2]
        house = str(p.house) if self.chance(0.85) else house_words(p.house)
        street = f"{house} {p.street}" + (f", {p.unit}" if p.unit else "")
        st = state if self.chance(0.6) else abbr
        if mode == "full":
            text = f"{street}, {city}, {st} {p.zip}" if self.chance(0.8) else f"{street}, {city}, {st}"
        elif mode == "street":
            text = street
        elif mode == "city_state":
            text = f"{city}, {state}"
        elif mode == "city_zip":
            text = f"{city}, {st} {p.zip}" if self.chance(0.5) else f"{city}, {st}, {p.zip}"
        elif mode == "zip":
            text = p.zip if self.chance(0.8) else spoken([p.zip], oh=True)
        else:
            raise ValueError(mode)
        return E("ADDRESS", text)

    def email(self, style=None):
        local, dom = self.p.email_local, self.p.email_domain
        style = style or self.r.choices(["written", "spoken"], [55, 45])[0]
        if style == "written":
            return E("EMAIL", f"{local}@{dom}")

        def sp(s):
            out = []
            for tok in re.split(r"([._])", s):
                if tok == ".":
                    out.append("dot")
                elif tok == "_":
                    out.append("underscore")
                elif tok:
                    m = re.match(r"^([a-z]*)(\d*)$", tok)
                    if m and m.group(2):
                        if m.group(1):
                            out.append(m.group(1))
                        out.append(" ".join(ONES[int(d)] for d in m.group(2)))
                    else:
                        out.append(tok)
            return " ".join(out)

        return E("EMAIL", f"{sp(local)} at {sp(dom)}")

    def username(self):
        u = self.p.username
        if self.chance(0.25):
            u2 = u.replace("_", " underscore ").replace(".", " dot ")
            return E("USERNAME", re.sub(r"\s+", " ", u2).strip())
        return E("USERNAME", u)

    def password(self):
        return E("PASSWORD", self.p.password)

    def temp_password(self):
        w = self.pick(PASSWORD_WORDS)
        return E("PASSWORD", f"{w}{self.r.choice('#$@!')}{self.r.randint(100, 9999)}")

    def passport(self):
        pp = self.p.passport
        if self.chance(0.2):
            return E("PASSPORT_NUMBER", " ".join(pp))
        return E("PASSPORT_NUMBER", pp)

    def driver(self):
        d = self.p.driver
        if self.chance(0.15):
            return E("DRIVER_ID", " ".join(d))
        return E("DRIVER_ID", d)

    def ip(self, private=None):
        r = self.r
        if private is None:
            private = self.chance(0.5)
        if private:
            text = self.pick([f"192.168.{r.choice([0, 1, 1, 4, 10, 50])}.{r.randint(1, 254)}",
                              f"10.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}",
                              "192.168.1.1", "192.168.0.1"])
        else:
            text = f"{r.choice([24, 47, 66, 71, 73, 98, 104, 142, 174, 184])}.{r.randint(0, 255)}." \
                   f"{r.randint(0, 255)}.{r.randint(1, 254)}"
        if self.chance(0.15):
            text = text.replace(".", " dot ")
        return E("IP_ADDRESS", text)

    def url(self, path):
        base = re.sub(r"[^a-z]", "", self.org_name.lower().replace("the ", ""))
        tld = self.pick(["com", "com", "net"])
        text = self.pick([f"www.{base}.{tld}/{path}", f"{base}.{tld}/{path}", f"https://{base}.{tld}/{path}"])
        if self.chance(0.15):
            text = f"{base} dot {tld} slash {path}"
        return E("URL", text)

    def month(self):
        return E("DATE_TIME", self.pick(["May", "May", "June", "April", "March", "August", "January",
                                         "October", "December", "July"]))

    def when_past(self):
        return E("DATE_TIME", self.pick([
            "yesterday", "yesterday", "last night", "this morning", "Sunday night", "last Tuesday",
            "last Friday", "on Saturday", "two days ago", "over the weekend", "last week",
            "on Monday", f"on the {ord_sfx(self.r.randint(1, 12))}",
            f"on {MONTHS[self.r.randint(8, 10)]} {ord_sfx(self.r.randint(1, 30))}"]))

    def time_of_day(self):
        r = self.r
        h = r.choice([8, 9, 10, 11, 1, 2, 3, 4])
        mm = r.choice([0, 0, 15, 30, 30, 45])
        ap = "AM" if h >= 8 else "PM"
        ap = r.choice([ap, ap.lower().replace("am", "a.m.").replace("pm", "p.m.")])
        if mm == 0 and self.chance(0.3):
            return f"{h} o'clock"
        return f"{h}:{mm:02d} {ap}" if mm or self.chance(0.5) else f"{h} {ap}"

    def appointment(self):
        r = self.r
        d = REF_DATE + dt.timedelta(days=r.randint(2, 45))
        while d.weekday() == 6:
            d += dt.timedelta(days=1)
        day, mn, dd = WEEKDAYS[d.weekday()], MONTHS[d.month - 1], d.day
        t = self.time_of_day()
        return E("DATE_TIME", self.pick([
            f"next {day} at {t}", f"{day}, {mn} {ord_sfx(dd)} at {t}", f"{day} the {ord_sfx(dd)} at {t}",
            f"tomorrow at {t}", f"{mn} {dd} at {t}", f"this {day} at {t}", f"{day} afternoon",
            f"{mn} {ord_sfx(dd)}", f"{day}, {mn} {dd}, at {t}"]))

    def day(self):
        return E("DATE_TIME", self.pick(["next Tuesday", "next Monday", "tomorrow", "Friday",
                                         "this Thursday", "next week", "the 21st", "Wednesday",
                                         f"{MONTHS[self.r.randint(10, 11)]} {ord_sfx(self.r.randint(1, 28))}"]))

    def amount(self, small=False):
        r = self.r
        dollars = r.randint(5, 60) if small else r.choice([r.randint(5, 99), r.randint(100, 999), r.randint(1000, 4999)])
        cents = r.choice([0, 99, r.randint(1, 98), 50, 0])
        k = r.random()
        if k < 0.6:
            text = f"${dollars:,}.{cents:02d}" if cents else f"${dollars:,}"
        elif k < 0.8:
            text = f"{dollars} dollars" + (f" and {cents} cents" if cents else "")
        else:
            text = f"{words(dollars)} dollars" + (f" and {words(cents)} cents" if cents else "")
        return N("AMOUNT", text)

    def order_no(self, shape=None):
        r = self.r
        shape = shape or r.choice(["phone", "phone", "ssn", "ssn", "digits", "alnum", "grouped",
                                   "spoken_phone", "code"])
        if shape == "phone":
            text = f"{r.randint(200, 999)}-{r.randint(100, 999)}-{digits(r, 4)}"
        elif shape == "ssn":
            text = f"{r.randint(100, 899)}-{digits(r, 2)}-{digits(r, 4)}"
        elif shape == "digits":
            text = str(r.randint(1, 9)) + digits(r, r.choice([7, 8, 9]))
        elif shape == "alnum":
            text = r.choice(["W", "CS-", "INC", "TK-", "R"]) + digits(r, 7)
        elif shape == "grouped":
            text = " ".join(digits(r, 4) for _ in range(3))
        elif shape == "tracking":
            text = "1Z" + "".join(r.choice("0123456789ABCDEFGHJKLMNPRSTVWXY") for _ in range(16))
        elif shape == "spoken_phone":
            text = spoken([str(r.randint(200, 999)), str(r.randint(100, 999)), digits(r, 4)])
        else:  # code
            text = "".join(r.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(6))
        return N("ORDER_NUMBER", text)

    # -- shared segments
    def greet(self):
        if self.chance(0.8):
            self.A([
                "Thank you for calling {Org}. My name is {agent}. How can I help you today?",
                "Hi, thanks for calling {Org}, this is {agent}. Who do I have the pleasure of speaking with?",
                "Good morning, {org} customer care, you're speaking with {agent}. How may I help you?",
                "{Org}, this is {agent} speaking. What can I do for you today?",
                "Thanks for calling {Org}. This is {agent}, and I'll be taking care of you today. What's going on?",
                "Hello and thank you for calling {Org}. My name is {agent}. Can I start with your name, please?",
                "Good afternoon, you've reached {Org}. This is {agent}. How can I help?",
            ])
        else:
            self.A(["Thank you for calling {Org}. How can I help you today?",
                    "Hi, you've reached {Org}. What can I do for you?",
                    "{Org} support, how may I help you?"])

    def intro(self, reasons, with_name=0.5):
        reason = self.pick(reasons)
        if self.chance(with_name):
            self.C([
                f"Hi, my name is {{full}}, and {reason}",
                f"Hi, yes, this is {{full}}. Um, {reason}",
                f"Hello. This is {{full}}, {reason}",
                f"Yeah, hi. My name's {{full}}. {reason[0].upper() + reason[1:]}",
                f"Hi {{agent}}, this is {{full}}. {reason[0].upper() + reason[1:]}",
            ])
            return True
        self.C([f"Hi, {reason}", f"Hi, um, {reason}", f"Yes, hello. {reason[0].upper() + reason[1:]}",
                f"Hey {{agent}}. {reason[0].upper() + reason[1:]}"])
        return False

    def get_name(self, given):
        if not given:
            self.A(["I can help with that. Can I get your first and last name, please?",
                    "Sure thing. Who am I speaking with today?",
                    "I'd be happy to look into that. May I have your full name?",
                    "Okay. Can I start with the name on the account?",
                    "Absolutely. What's your name, please?"])
            if self.chance(0.3):
                self.C(["It's {full}. Last name is spelled {spelled}.",
                        "{full}. That's {spelled}.",
                        "Yeah, {full}. {spelled}."],
                       spelled=E("NAME", spell(self.p.last, self.r)))
            else:
                self.C(["It's {full}.", "{full}.", "Yeah, it's {full}.", "Sure, it's {full}.",
                        "My name is {full}."])
        elif self.chance(0.3):
            self.A(["Thank you. And could you spell your last name for me?",
                    "Thanks. Can you spell the last name for me, please?"])
            self.C(["Sure. {spelled}.", "Yes, it's {spelled}.", "{spelled}."],
                   spelled=E("NAME", spell(self.p.last, self.r)))
        self.A(["Thank you, {first}.", "Thanks, {formal}.", "Great, thank you, {formal}.",
                "Okay, thank you.", "Perfect. Thanks, {first}.", "Thank you so much, {first}.",
                "Got it. Thank you."])

    def verify(self, options, k=1):
        for what in self.r.sample(options, k):
            if what == "dob":
                self.A(["Can you verify your date of birth for me?", "And what's your date of birth?",
                        "For security, can I have your date of birth, please?",
                        "Can you confirm your birthday for me?"])
                self.C(["Sure, it's {dob}.", "{dob}.", "Yeah, {dob}.", "It's {dob}."], dob=self.dob())
            elif what == "ssn4":
                self.A(["Can I get the last four of your social?",
                        "And can you verify the last four digits of your Social Security number?",
                        "For verification, what are the last four of your SSN?",
                        "I just need the last four of your social security number."])
                self.C(["It's {n}.", "{n}.", "Sure, {n}.", "Um, {n}."], n=self.last4("SSN"))
            elif what == "phone":
                self.A(["What's the best phone number on the account?",
                        "Can you confirm the phone number on file?",
                        "And what phone number do we have for you?"])
                self.C(["It's {ph}.", "{ph}.", "Yeah, it should be {ph}.", "My cell, {ph}."], ph=self.phone())
            elif what == "phone4":
                self.A(["Can you give me the last four digits of the phone number on the account?",
                        "What are the last four of your phone number?"])
                self.C(["{n}.", "It's {n}.", "Uh, {n}."], n=self.last4("PHONE"))
            elif what == "zip":
                self.A(["And what's the zip code on the account?", "Can you verify your billing zip code?",
                        "And the zip code, please?"])
                self.C(["It's {z}.", "{z}.", "Sure, {z}."], z=self.address("zip"))
            elif what == "email":
                self.A(["What's the email address on the account?", "Can I get your email address, please?"])
                self.C(["It's {em}.", "{em}.", "Sure, it's {em}."], em=self.email())
            elif what == "card4":
                self.A(["Can I get the last four digits of the card?", "What are the last four on the card?"])
                self.C(["{n}.", "It's {n}.", "The last four are {n}."], n=self.last4("CREDIT_DEBIT_NUMBER"))
            elif what == "ssn":
                self.A(["Can I have your Social Security number to verify?",
                        "I'll need your full social security number, please.",
                        "What's your SSN?"])
                self.C(["It's {n}.", "{n}.", "Sure, {n}.", "Okay, it's {n}."], n=self.ssn())
            elif what == "dl":
                self.A(["Can you verify with your driver's license number?",
                        "Do you have a driver's license number I can use to verify you?"])
                self.C(["Yes, it's {n}.", "{n}.", "Hang on. Okay, {n}."], n=self.driver())
            elif what == "passport":
                self.A(["If you don't have that, a passport number also works.",
                        "Alternatively, I can verify you with a passport number."])
                self.C(["Okay, my passport number is {n}.", "Sure, it's {n}."], n=self.passport())
            elif what == "acct4":
                self.A(["What are the last four of the account number?",
                        "Can you give me the last four digits of your checking account?"])
                self.C(["{n}.", "It's {n}.", "Uh, let me check. {n}."], n=self.last4("BANK_ACCOUNT_NUMBER"))
            self.A(["Thank you.", "Perfect, that matches.", "Great, you're verified.", "Okay, thank you.",
                    "Thanks, {first}. I've got your account up."])

    def small_talk(self, n=1):
        pairs = [
            ("How's your day going so far?",
             ["Oh, it's going. Busy, but good.", "Not bad, thanks for asking.", "Could be worse, honestly."]),
            ("Sorry about the wait today. We've had a lot of calls.",
             ["That's okay. I figured it would be busy.", "No worries, I had the radio on.",
              "It's fine. I hope you're not too swamped."]),
            ("Bear with me one moment, my system is a little slow today.",
             ["Sure, take your time.", "No problem.", "That's fine, I'm not in a rush."]),
            ("Is it still raining out your way?",
             ["It stopped an hour ago, finally.", "Yeah, it hasn't quit.",
              "No, it's actually sunny now."]),
            ("I will just need a minute to pull everything up.",
             ["Will do, I'll hang on.", "Okay.", "Sure thing."]),
            ("I'm going to put you on a brief hold while I check with my supervisor. Is that okay?",
             ["Yeah, that's fine.", "Sure, go ahead.", "Okay, I'll hold."]),
            ("Thanks so much for your patience.",
             ["Of course.", "No problem at all.", "Thanks for helping me out."]),
            ("I hope the rest of your week goes a little smoother.",
             ["Me too, honestly.", "Thanks, I hope so.", "Ha, fingers crossed."]),
            ("I'll mark this as urgent so it doesn't get lost.",
             ["I appreciate that.", "Thank you, that would be great.", "Great."]),
            ("Are you able to stay on the line while I check?",
             ["Yes, I can wait.", "Sure. I've got some time.", "Yeah, go ahead."]),
        ]
        for q, ans in self.r.sample(pairs, n):
            self.A(q)
            self.C(ans)

    def closing(self):
        self.A(["Is there anything else I can help you with today?",
                "Is there anything else I can do for you, {first}?",
                "Was there anything else you needed today?",
                "Anything else I can help with, {formal}?"])
        self.C(["No, that's it. Thank you so much, {agent}.", "No, that was all. Thanks for your help.",
                "Nope, that's everything. Have a good one.", "That's all, thanks, {agent}.",
                "I think that's it. Thank you.", "No, you've been a big help. Thanks."])
        self.A(["You're welcome, {formal}. Have a great rest of your day.",
                "My pleasure. Take care, {first}.", "Thank you for calling {Org}. Have a good day.",
                "Alright, you have a wonderful day. Bye-bye.", "Thanks for calling, {first}. Take care."])

    def split_number(self, h1, h2, what):
        self.C([f"Okay, the {what} is {{h1}}", f"Sure. It's {{h1}}", f"Okay, ready? {{h1}}",
                f"Let me grab it. Okay, {{h1}}"], h1=h1)
        self.A(["Mm-hmm.", "Okay, go ahead.", "Got it.", "Okay.", "Uh-huh, and the rest?"])
        self.C(["{h2}.", "And then {h2}.", "Then {h2}.", "{h2}. That's it."], h2=h2)

    def to_dict(self, idx):
        return {"id": f"eval-{idx:05d}", "scenario": self.scenario, "turns": self.turns}


# ----------------------------------------------------------------------------------------------
# Scenarios
# ----------------------------------------------------------------------------------------------


def sc_card_issue(c):
    c.greet()
    kind = c.pick(["declined", "lost", "fraud"])
    reasons = {
        "declined": ["my card keeps getting declined and I don't know why.",
                     "I tried to pay at {merchant} {when} and my card was declined.",
                     "my debit card isn't working anywhere since {when}."],
        "lost": ["I think I lost my credit card {when}.", "my wallet was stolen {when} and I need to cancel my card.",
                 "I can't find my card. I had it at {merchant} {when}."],
        "fraud": ["there's a charge on my card I didn't make.",
                  "I see a charge from {merchant} for {amt} that I don't recognize.",
                  "somebody used my card {when}. There's a charge for {amt}."],
    }[kind]
    merchant, when, amt = org(c.pick(ORGS["merchant"])), c.when_past(), c.amount()
    c.slots.update(merchant=merchant, when=when, amt=amt)
    given = c.intro(reasons)
    if c.chance(0.5):
        c.A(["I'm sorry to hear that. Let's get it sorted out.", "Oh no, I'm sorry. I can definitely help."])
        c.C(["Thank you.", "Okay, thanks.", "I hope so."])
    c.get_name(given)
    mode = c.pick(["full", "split", "last4", "split"])
    if mode == "last4":
        c.verify(["card4"])
    else:
        c.A(["Can you read me the card number?", "What's the card number, please?",
             "Okay, can I get the full card number?"])
        if mode == "split":
            h1, h2 = c.card_halves()
            c.split_number(h1, h2, "card number")
        else:
            c.C(["It's {cc}.", "Sure, {cc}.", "Okay, it's {cc}.", "{cc}."], cc=c.card())
        c.A(["Thank you. And the expiration date?", "And what's the expiration on the card?"])
        c.C(["{exp}.", "It expires {exp}.", "Um, {exp}."], exp=c.expiry())
        if c.chance(0.6):
            c.A(["And the security code on the back?", "Can you read me the three digit code on the back?"])
            c.C(["It's {cvv}.", "{cvv}."], cvv=c.cvv())
    c.verify(["dob", "ssn4", "zip", "phone4"], k=c.pick([1, 1, 2]))
    if c.chance(0.4):
        c.small_talk()
    if kind == "declined":
        c.A(["I see the issue. The card was locked after a charge at {merchant} for {amt} was flagged. "
             "I've removed the block, so you should be good to go.",
             "It looks like the card hit its daily limit {when}. I can raise it for you today.",
             "Okay, there was a fraud alert on the account. I've cleared it."])
        c.C(["Oh, good. So I can use it now?", "Great, thank you.", "Okay, that makes sense."])
        c.A(["Yes, it should work right away. If it doesn't, give us a call back.",
             "Yes. You may need to run it again at the register.",
             "You should be all set. There's a grace period on the late fee too, so you won't be charged."])
    elif kind == "lost":
        c.A(["I've canceled the card ending in {c4}. We'll mail a new one to {addr}. Is that still correct?",
             "Okay, the old card is blocked. The replacement will go to the address on file, {addr}. Is that right?"],
            c4=E("CREDIT_DEBIT_NUMBER", c.p.card[-4:]), addr=c.address("full"))
        c.C(["Yes, that's right.", "Yep.", "Yes. Will it take long?"])
        c.A(["It should arrive in five to seven business days, so around {day}.",
             "You'll have it by {day}, hopefully sooner."], day=c.day())
    else:
        case = c.order_no(c.pick(["phone", "ssn", "digits"]))
        c.A(["I see that charge for {amt} from {merchant}. I'll open a dispute, and your case number is {case}.",
             "Okay, I've filed a dispute for the {amt} charge. The claim number is {case}."], case=case)
        c.C(["Can you repeat that case number?", "Okay, let me write that down.", "Thank you."])
        c.A(["Sure. It's {case}.", "No problem. You'll also get an email with it."], case=case)
    c.closing()


def sc_address_change(c):
    c.greet()
    given = c.intro(["I just moved and I need to update my address.",
                     "I need to change the mailing address on my account.",
                     "I'm moving next month and want my bills to go to the new place.",
                     "my statements are still going to my old address."])
    c.get_name(given)
    c.verify(["phone", "dob", "ssn4", "email", "phone4", "dl", "ssn"], k=c.pick([1, 2]))
    if c.chance(0.6):
        c.A(["Okay, and where were you living before?", "What's the old address we have?"])
        c.C(["It was in {old}.", "We were over in {old}.", "I used to live in {old}."],
            old=E("ADDRESS", f"{(o := c.pick(CITIES))[0]}, {o[1]}"))
    c.A(["What's the new address?", "Okay, go ahead with the new address.",
         "Alright, what address would you like on the account?"])
    if c.chance(0.45):
        c.C(["It's {street}.", "{street}.", "Okay, {street}."], street=c.address("street"))
        c.A(["Okay. And the city and zip?", "Got it. What city is that?", "Mm-hmm. And city, state?"])
        c.C(["{cz}.", "That's {cz}.", "It's in {cz}."], cz=c.address("city_zip"))
    else:
        c.C(["It's {addr}.", "{addr}.", "Sure, it's {addr}."], addr=c.address("full"))
        if c.chance(0.5):
            c.A(["And the zip code there?", "Can you confirm the zip code?"])
            c.C(["It's {z}.", "{z}."], z=c.address("zip"))
    c.A(["Let me read that back. {addr}. Is that correct?", "I have {addr}. Does that look right?"],
        addr=c.address("full"))
    c.C(["Yes, that's it.", "Yep, perfect.", "Yes. Oh, and May I also update my phone number?",
         "That's right."])
    if c.chance(0.5):
        c.A(["Sure. What's the new number?", "Of course. Go ahead."])
        c.C(["It's {ph}.", "{ph}."], ph=c.phone())
    c.A(["When does the new address take effect?", "Do you want this effective right away or starting {day}?"],
        day=c.day())
    c.C(["Starting {day}, please.", "Right away is fine.", "We move in {m}, so let's say {m}."],
        day=c.day(), m=c.month())
    if c.chance(0.5):
        c.A(["I'll send a confirmation to {em}. Is that still good?", "Should I email the confirmation to {em}?"],
            em=c.email("written"))
        c.C(["Yes, that works.", "Yeah, that's still my email."])
    c.small_talk(c.pick([0, 1]))
    c.closing()


def sc_tax_form(c):
    c.greet()
    form = c.pick(["W-2", "1099", "1098", "tax refund"])
    given = c.intro([f"I'm calling about my {form}. I haven't gotten it yet.",
                     f"I'm checking on the status of my {form}.",
                     f"I never received my {form} and I need it to file."])
    c.get_name(given)
    if c.chance(0.6):
        c.A(["I'll need to verify your identity. Can I have your full Social Security number?",
             "For this I need your Social Security number, please.",
             "Can you give me your social, please?"])
        c.C(["Sure, it's {ssn}.", "{ssn}.", "Okay, {ssn}."], ssn=c.ssn())
    else:
        c.verify(["ssn4"])
    c.verify(["dob", "zip", "phone"], k=1)
    c.small_talk(c.pick([0, 1]))
    c.A(["It looks like your {form} was mailed {when} to the address in {cs}.",
         "Okay, I show that it went out {when}. It was mailed to {cs}.",
         "The {form} was issued {when}, and it went to {addr}."],
        form=form, when=c.when_past(), cs=c.address("city_state"), addr=c.address("full"))
    c.C(["That's my old address. I moved in {m}.", "Hmm, I haven't seen it yet.",
         "Oh, I moved. That's the problem."], m=c.month())
    c.A(["I've opened case number {case} to have it reissued.",
         "No problem. I'll request a reissue. Your reference number is {case}.",
         "I can send a copy to your email instead. Your ticket is {case}."],
        case=c.order_no(c.pick(["ssn", "ssn", "phone", "alnum"])))
    if c.chance(0.5):
        c.C(["And my refund, about how much should that be?", "Can you tell me the refund amount?"])
        c.A(["I show a refund of {amt}, and it should be deposited by {m}.",
             "Your refund is {amt}. It was scheduled for {day}."], amt=c.amount(), m=c.month(), day=c.day())
    c.C(["Okay, great. Thank you.", "Alright, I hope it comes soon."])
    c.closing()


def sc_appointment(c):
    c.greet()
    who = c.pick(["self", "kid", "spouse"])
    reasons = {"self": ["I'd like to schedule an appointment.", "I need to book a checkup.",
                        "I need to reschedule my appointment for {when}."],
               "kid": ["I need to make an appointment for my {kid_role}, {kid}.",
                       "I'm calling to book a visit for my {kid_role}."],
               "spouse": ["I'm calling to book an appointment for my {spouse_role}, {spouse}.",
                          "my {spouse_role} needs an appointment with Dr. {doc}."]}[who]
    c.slots.update(when=c.day(), doc=E("NAME", c.pick(LAST_NAMES)))
    given = c.intro(reasons)
    c.get_name(given)
    if who == "kid":
        c.A(["And what's your {kid_role}'s full name and age?", "Can I get your {kid_role}'s name and age?"])
        c.C(["{kidfull}. {Pron_is} {kid_age}.", "{Pron_is} {kid_age}.",
             "{kidfull}, and {kid_age}. {Pron} just had a birthday {bday}."],
            bday=c.when_past(),
            Pron={"son": "He", "daughter": "She", "kid": "They"}[c.p.kid_role],
            Pron_is={"son": "He's", "daughter": "She's", "kid": "They're"}[c.p.kid_role],
            kidfull=E("NAME", f"{c.p.kid} {c.p.last}"))
        c.A(["And {kid}'s date of birth?", "Can I get the date of birth?"], kid=E("NAME", c.p.kid))
        km, kd = c.r.randint(1, 12), c.r.randint(1, 28)
        d = dt.date(REF_DATE.year - c.p.kid_age - ((REF_DATE.month, REF_DATE.day) < (km, kd)), km, kd)
        c.C(["{d}.", "It's {d}."], d=E("DATE_TIME", c.pick([f"{MONTHS[d.month - 1]} {d.day}, {d.year}",
                                                             f"{d.month}/{d.day}/{d.year}"])))
    else:
        c.verify(["dob"])
    c.A(["Are you a current patient with us?", "Have you been seen here before?"])
    c.C(["Yes, I saw Dr. {doc} {ly}.", "No, this is the first time.", "Yes, for a few years now."],
        ly=E("DATE_TIME", c.pick(["last year", "last spring", "in March", "a couple of months ago"])))
    c.A(["I have an opening {appt}. Does that work?", "The next available is {appt}. Would that be okay?",
         "Dr. {doc} can see you {appt}."], appt=c.appointment())
    if c.chance(0.5):
        c.C(["Hmm, do you have anything {day}?", "That doesn't work for me. What about {day}?"], day=c.day())
        c.A(["Yes, I can do {appt}.", "Let me check. {appt} is open."], appt=c.appointment())
    c.C(["That works.", "Perfect, I'll take it.", "Yes, that's fine."])
    c.A(["What's the best number for a reminder text?", "Can I get a callback number in case we need to reschedule?"])
    c.C(["{ph}.", "It's {ph}.", "You can text {ph}."], ph=c.phone())
    if c.chance(0.4):
        c.A(["There may be a copay of {amt} at the visit.", "Just so you know, the visit is {amt} without insurance."],
            amt=c.amount(small=True))
        c.C(["Okay, that's fine.", "Got it."])
    c.A(["Please arrive about fifteen minutes early.", "You will get a reminder the day before."])
    c.closing()


def sc_internet(c):
    c.greet()
    c.slots.update(when=c.when_past())
    given = c.intro(["my internet keeps dropping out.", "my Wi-Fi has been down since {when}.",
                     "I can't log into my account online.", "my internet is really slow."],
                    with_name=0.4)
    c.get_name(given)
    c.A(["Can you give me the username on the account?", "What's your account username?"])
    c.C(["It's {u}.", "{u}.", "Um, I think it's {u}."], u=c.username())
    c.verify(["phone", "phone4", "email", "zip"], k=1)
    c.small_talk(c.pick([0, 1, 1]))
    c.A(["Can you open a browser and go to {ip}?", "Let's log into the router. Type {ip} in the address bar."],
        ip=c.ip(private=True))
    c.C(["Okay, it's asking for a password.", "Okay, I'm there.", "Hold on. Okay, it loaded."])
    if c.chance(0.5):
        c.C(["Should I use {pw}? That's what I set it to.", "I changed it to {pw} {lm}."], pw=c.password(), lm=c.when_past())
        c.A(["For your security, please don't share your password with me. Just type it in.",
             "Okay, go ahead and enter that."])
    c.A(["What IP address does it show on the status page?", "Can you read me the WAN IP address?"])
    c.C(["It says {ip}.", "{ip}.", "It's showing {ip}."], ip=c.ip(private=False))
    c.A(["Okay, I'm going to reset the connection on our side. Your ticket number is {t}.",
         "I've sent a refresh signal. I'll open a ticket for you, number {t}."],
        t=c.order_no(c.pick(["phone", "alnum", "digits"])))
    if c.chance(0.5):
        c.A(["I've also reset your account password. Your temporary password is {pw}.",
             "To get you back in online, I set a temporary password: {pw}."], pw=c.temp_password())
        c.C(["Okay, let me write that down.", "Got it, thanks."])
        c.A(["You can change it at {u}.", "Log in at {u} and it will ask you to pick a new one."],
            u=c.url(c.pick(["login", "account/reset", "support"])))
    if c.chance(0.5):
        c.A(["If it keeps dropping, I can send a technician {appt}.",
             "I can book a technician for {appt} if needed."], appt=c.appointment())
        c.C(["Let's see if this works first.", "Yes, please book that.", "Okay, that works."])
    c.closing()


def sc_insurance(c):
    c.greet()
    c.slots.update(when=c.when_past())
    given = c.intro(["I need to file a claim.", "I'm calling about my policy.",
                     "I want to add my {spouse_role} to my policy.",
                     "I had a fender bender {when} and need to report it."])
    c.get_name(given)
    c.verify(["dob", "ssn4", "zip", "ssn", "dl"], k=c.pick([1, 2]))
    c.A(["And can you confirm your age for me?", "How old are you currently?"])
    c.C(["I'm {age}.", "{age}.", "I'm {age} years old.", "I just turned {age} in {m}.", "{age}, unfortunately."],
        m=c.month())
    if c.chance(0.5):
        c.A(["Who else is on the policy?", "Are there other drivers in the household?"])
        c.C(["My {spouse_role}, {spouse_full}. {Pr_is} {sage}.",
             "Just my {spouse_role}, {spouse}. {Pr_is} {sage} years old.",
             "My {kid_role} {kid}, who's {kid_age}."],
            Pr_is={"husband": "He's", "wife": "She's", "partner": "They're"}[c.p.spouse_role],
            sage=E("AGE", str(c.r.randint(25, 80))))
    c.A(["Where do you work, {first}?", "And what's your occupation?"])
    c.C(["I'm a bookkeeper at {emp}.", "I work for {emp}.", "I'm retired. I used to be with {emp}."],
        emp=org(c.pick(ORGS["employer"])))
    c.A(["Okay. When did the incident happen?", "And when was this?"])
    c.C(["It was {when}, around {t}.", "{When}.", "It happened {when}."],
        when=c.when_past(), When=E("DATE_TIME", c.pick(["Yesterday", "Last Friday", "Two days ago"])),
        t=E("DATE_TIME", c.time_of_day()))
    c.A(["I've started claim {claim}. The deductible on your plan is {amt}.",
         "Your claim number is {claim}, and your deductible is {amt}."],
        claim=c.order_no(c.pick(["ssn", "phone", "alnum"])), amt=c.amount())
    c.C(["Okay. Will someone call me?", "Can you email me that?", "Alright, thank you."])
    c.A(["An adjuster will reach out within two business days at {ph}.",
         "I'll send everything to {em}.", "Yes, you will get a call from an adjuster."],
        ph=c.phone(), em=c.email())
    c.small_talk(c.pick([0, 1]))
    c.closing()


def sc_travel(c):
    c.greet()
    given = c.intro(["I need to add my passport information to my reservation.",
                     "I have an international flight and the app says my travel documents are missing.",
                     "I want to change my flight."])
    c.get_name(given)
    c.A(["Can I have your confirmation code?", "What's the confirmation number on the booking?"])
    c.C(["It's {code}.", "{code}.", "Um, {code}."], code=c.order_no(c.pick(["code", "code", "phone"])))
    c.A(["Thank you. I see your trip departing {appt}.", "Got it. You're flying out {appt}."],
        appt=c.appointment())
    c.verify(["dob", "email"], k=1)
    c.A(["Go ahead with the passport number whenever you're ready.", "What's your passport number?"])
    c.C(["It's {pp}.", "{pp}.", "Okay, it's {pp}."], pp=c.passport())
    c.A(["And the expiration date on the passport?", "When does the passport expire?"])
    y = c.r.randint(2027, 2035)
    c.C(["{d}.", "It expires {d}."], d=E("DATE_TIME", f"{c.pick(MONTHS)} {c.r.randint(1, 28)}, {y}"))
    if c.chance(0.5):
        c.A(["Is anyone else traveling with you?", "Are there other passengers on this booking?"])
        c.C(["Yes, my {spouse_role}, {spouse_full}.", "Just me this time.", "My {kid_role}, {kid}. {Pron_is} {kid_age}."],
            Pron_is={"son": "He's", "daughter": "She's", "kid": "They're"}[c.p.kid_role])
    if c.chance(0.5):
        c.A(["There's a change fee of {amt}. Would you like to go ahead?"], amt=c.amount())
        c.C(["Yes, that's fine.", "Ugh, okay. Go ahead."])
        c.A(["Which card would you like to use?"])
        c.C(["The one ending in {n}.", "Use my card on file.", "Here, {cc}."],
            n=E("CREDIT_DEBIT_NUMBER", c.p.card[-4:]), cc=c.card())
    c.A(["Can I get a phone number for flight alerts?", "And a mobile number in case of delays?"])
    c.C(["{ph}.", "Sure, {ph}."], ph=c.phone(c.pick(["plus", "dash", "spoken", "paren"])))
    c.closing()


def sc_dmv(c):
    c.greet()
    given = c.intro(["I need to renew my driver's license.", "I lost my license and need a replacement.",
                     "I want to change the address on my driver's license.",
                     "I'm calling about a road test appointment."])
    c.get_name(given)
    c.A(["What's your driver's license number?", "Can I have your license number, please?",
         "Do you have your driver's license number handy?"])
    c.C(["Yes, it's {dl}.", "{dl}.", "Hold on, let me grab my wallet. Okay, {dl}."], dl=c.driver())
    c.verify(["dob", "ssn4", "zip"], k=c.pick([1, 2]))
    if c.chance(0.5):
        c.A(["What address should be on the license?", "Is your address still {addr}?"], addr=c.address("full"))
        c.C(["It's {addr}.", "No, it's {addr} now.", "Yes, that's still right."], addr=c.address("full"))
    c.A(["Your license expires {d}. You can renew online at {u}, or come in.",
         "I see it expired {when}. You'll need to come in person."],
        d=E("DATE_TIME", f"{MONTHS[c.r.randint(0, 11)]} {c.r.randint(1, 28)}, {c.r.randint(2025, 2027)}"),
        u=c.url(c.pick(["renew", "license/renewal"])), when=c.when_past())
    c.C(["I'd rather come in. Can I get an appointment?", "Can I make an appointment?"])
    c.A(["The soonest is {appt} at our downtown office.", "I can get you in {appt}."],
        appt=c.appointment())
    c.C(["That works.", "Okay, book it."])
    c.A(["The renewal fee is {amt}. Your confirmation number is {conf}.",
         "You're all set. Confirmation number {conf}. Bring the fee of {amt}."],
        amt=c.amount(), conf=c.order_no(c.pick(["ssn", "phone", "digits", "code"])))
    c.small_talk(c.pick([0, 1]))
    c.closing()


def sc_refund_bank(c):
    c.greet()
    c.slots.update(amt=c.amount())
    given = c.intro(["I was told my refund of {amt} could go straight to my bank account.",
                     "I returned an order and I'm waiting on a refund.",
                     "I want to set up direct deposit for my refund."])
    c.get_name(given)
    c.verify(["email", "phone", "dob"], k=1)
    c.A(["I can send that by direct deposit. I'll need your routing number and account number.",
         "Okay. Do you have a check handy? I'll need the routing number first."])
    c.C(["Sure, the routing number is {rt}.", "Routing is {rt}.", "Okay, {rt}."], rt=c.routing())
    c.A(["Thank you. And the account number?", "Got it. Now the account number, please."])
    if c.chance(0.5):
        h1, h2 = c.account_halves()
        c.split_number(h1, h2, "account number")
    else:
        c.C(["It's {ac}.", "{ac}.", "The account number is {ac}."], ac=c.account())
    c.A(["So that's the checking account ending in {a4}, correct?",
         "Let me confirm the last four of that account: {a4}?"],
        a4=E("BANK_ACCOUNT_NUMBER", c.p.account[-4:]))
    c.C(["Yes.", "That's right.", "Yep, that's it."])
    if c.chance(0.5):
        c.A(["And whose name is on the account?"])
        c.C(["Mine, {full}.", "It's joint with my {spouse_role}, {spouse}.", "Just me."])
    c.A(["Your refund of {amt} will post in three to five business days, so by {day}.",
         "You should see {amt} in the account by {day}."], day=c.day())
    if c.chance(0.5):
        c.A(["Your refund reference number is {ref}.", "Keep this reference number: {ref}."],
            ref=c.order_no(c.pick(["phone", "ssn", "grouped"])))
        c.C(["Okay, got it.", "Can you text me that?"])
    c.small_talk(c.pick([0, 1]))
    c.closing()


def sc_order_tracking(c):
    c.greet()
    c.slots.update(when=c.when_past())
    given = c.intro(["I'm trying to track an order.", "my package was supposed to arrive {when} and it didn't.",
                     "I ordered something {when} and it still says processing."], with_name=0.3)
    c.A(["Do you have the order number?", "Can I get your order number?"])
    c.C(["Yeah, it's {o}.", "Sure. {o}.", "The order number is {o}."],
        o=c.order_no(c.pick(["phone", "phone", "ssn", "spoken_phone", "digits"])))
    if not given and c.chance(0.7):
        c.get_name(False)
    c.A(["I can also look it up by email. What email did you use?", "And the email on the order?"])
    c.C(["{em}.", "It's {em}."], em=c.email())
    c.A(["Thank you. It shipped {when}, and the tracking number is {tr}.",
         "I see it. The tracking number is {tr}, and it left the warehouse {when}."],
        tr=c.order_no(c.pick(["tracking", "grouped", "digits"])))
    c.A(["Is the delivery address {addr}?", "It's headed to {addr}. Is that right?"], addr=c.address("full"))
    c.C(["Yes.", "No, I moved to {addr}.", "Yes, that's right. Will it come today?"], addr=c.address("full"))
    c.A(["It's scheduled for {day} between {t1} and {t2}.", "It should arrive {day}."],
        day=c.day(), t1=E("DATE_TIME", c.pick(["9 AM", "10 a.m.", "noon"])),
        t2=E("DATE_TIME", c.pick(["5 PM", "8 p.m.", "6 PM"])))
    if c.chance(0.5):
        c.C(["Okay. And the total was {amt}, right?", "I paid {amt} for shipping, so I hope so."], amt=c.amount())
        c.A(["Yes, that's what I see.", "I can refund the shipping since it's late."])
    c.small_talk(c.pick([0, 1]))
    c.closing()


def sc_online_banking(c):
    c.greet()
    given = c.intro(["I'm locked out of online banking.", "I forgot my password for the app.",
                     "someone tried to log into my account."])
    c.get_name(given)
    c.A(["What's your online banking username?", "Can I have the username you log in with?"])
    c.C(["{u}.", "It's {u}."], u=c.username())
    c.verify(["ssn4", "dob", "phone4", "card4", "acct4", "ssn", "passport", "dl"], k=2)
    c.A(["I see {n} failed attempts from IP address {ip} {when}. Was that you?",
         "There was a login attempt from {ip} {when}. Do you recognize that?"],
        n=c.pick(["three", "five", "several"]), ip=c.ip(private=False), when=c.when_past())
    c.C(["No, that wasn't me!", "That might have been me at work.", "I don't think so."])
    c.A(["For security, can you confirm your debit card PIN using the keypad, or tell me the phone PIN on the account?",
         "Can you verify the account PIN?"])
    c.C(["It's {pin}.", "{pin}.", "I think it's {pin}."], pin=c.pin())
    c.A(["Thank you. I've reset your access. Your temporary password is {pw}.",
         "Okay, I've sent a reset link to {em}.", "Your new temporary password is {pw}. Please change it after you log in."],
        pw=c.temp_password(), em=c.email("written"))
    c.C(["Got it.", "Okay, where do I log in?", "Thanks."])
    c.A(["Go to {u} and sign in.", "You can sign in at {u}."], u=c.url(c.pick(["signin", "login", "secure"])))
    c.small_talk(c.pick([0, 1]))
    c.closing()


def sc_billing(c):
    c.greet()
    c.slots.update(amt=c.amount())
    given = c.intro(["my bill is way higher than usual.", "I was charged {amt} and I don't know why.",
                     "I'd like to set up a payment plan for my bill."])
    c.A(["I can look into that. What's the phone number on the account?",
         "Sure. Can I get the account phone number?"])
    c.C(["It's {ph}.", "{ph}."], ph=c.phone())
    c.get_name(given)
    c.A(["And the account PIN, please?", "Can you verify your account PIN?"])
    c.C(["{pin}.", "It's {pin}."], pin=c.pin())
    fee = c.amount(small=True)
    c.A(["I see the bill for {amt}. There was a late fee of {fee} from {m}.",
         "Your balance is {amt}. It includes a charge of {fee} from {when}."],
        fee=fee, m=c.month(), when=c.when_past())
    c.C(["That's not right. I paid on time.", "Oh, I didn't know about that.", "Can you take that off?"])
    c.A(["I can waive the {fee} as a courtesy.", "I'll take that fee off. It should show on your next statement."],
        fee=fee)
    if c.chance(0.5):
        c.C(["Can I pay it now with my card?"])
        c.A(["Sure, what's the card number?"])
        if c.chance(0.5):
            h1, h2 = c.card_halves()
            c.split_number(h1, h2, "card number")
        else:
            c.C(["{cc}.", "It's {cc}."], cc=c.card())
        c.A(["And the expiration date and security code?"])
        c.C(["{exp}, and the code is {cvv}.", "It's {exp}. Code {cvv}."], exp=c.expiry(), cvv=c.cvv())
        c.A(["Your payment of {amt} went through. Confirmation {conf}."], conf=c.order_no())
    elif c.chance(0.85):
        c.C(["Can I set up autopay from my checking account?", "I'd like to pay straight from my bank account."])
        c.A(["Sure. What's the routing number?", "Of course. I'll need the routing and account numbers."])
        c.C(["Routing is {rt}.", "{rt}.", "The routing number is {rt}."], rt=c.routing())
        c.A(["And the account number?", "Got it. And the account number?"])
        if c.chance(0.5):
            h1, h2 = c.account_halves()
            c.split_number(h1, h2, "account number")
        else:
            c.C(["{ac}.", "It's {ac}."], ac=c.account())
        c.A(["Autopay is set up. It will draft {day} each month.", "You're all set. The first draft is {day}."],
            day=E("DATE_TIME", c.pick(["on the 15th", "on the 1st", "on the 20th"])))
    c.small_talk(c.pick([1, 2]))
    c.closing()


def sc_store_hours(c):
    c.greet()
    day = E("DATE_TIME", c.pick(["tomorrow", "on Sunday", "this Saturday", "on Thanksgiving", "next Monday"]))
    c.C(["Hi, I just have a quick question. What time do you close today?",
         "Hi, are you open {day}?", "Hey, do you still do in-store pickup?"], day=day)
    c.A(["We're open until {t} today.", "Yes, we're open {day} from {t1} to {t2}.",
         "We are! Pickup runs until {t}."],
        t=E("DATE_TIME", c.pick(["8 PM", "9 p.m.", "6:30 PM"])), day=day,
        t1=E("DATE_TIME", c.pick(["10 AM", "9 a.m."])), t2=E("DATE_TIME", c.pick(["7 PM", "5 p.m."])))
    c.small_talk(c.pick([1, 2]))
    c.C(["And do you have the blue rain jackets in stock? They were {amt} online.",
         "Do you price match? I saw it for {amt} somewhere else."], amt=c.amount())
    c.A(["Let me check. Yes, we have a few left.", "We do price match with a receipt.",
         "I will check with the floor. It looks like we have two."])
    if c.chance(0.5):
        c.A(["I can hold one for you. What name should I put it under?"])
        nm = c.pick(["first", "full", "last"])
        c.C(["{%s}." % nm, "Under {%s}." % nm, "You can put it under {%s}." % nm])
        c.A(["Okay, it's on hold for {%s} until {day}. Your hold number is {h}." % nm,
             "Got it, {%s}. It'll be at the front desk until {day}. The hold number is {h}." % nm],
            day=c.day(), h=c.order_no(c.pick(["digits", "phone", "code"])))
    c.C(["Great, thank you.", "Perfect, thanks."])
    c.A(["You're welcome. Have a great day.", "See you soon. Bye."])


SCENARIOS = [
    ("card_issue", "bank", sc_card_issue),
    ("address_change", "bank", sc_address_change),
    ("tax_form_status", "tax", sc_tax_form),
    ("appointment_booking", "clinic", sc_appointment),
    ("internet_support", "isp", sc_internet),
    ("insurance", "insurance", sc_insurance),
    ("travel_passport", "travel", sc_travel),
    ("dmv_license", "dmv", sc_dmv),
    ("refund_bank_account", "retail", sc_refund_bank),
    ("order_tracking", "retail", sc_order_tracking),
    ("online_banking_lockout", "bank", sc_online_banking),
    ("billing_dispute", "utility", sc_billing),
    ("store_hours", "retail", sc_store_hours),
]
ADDRESS_ORGS = ["bank", "insurance", "utility", "isp"]


def make_call(seed, idx):
    r = random.Random(f"{seed}:{idx}")
    name, orgs, fn = SCENARIOS[(idx - 1) % len(SCENARIOS)]
    if name == "address_change":
        orgs = r.choice(ADDRESS_ORGS)
    c = Call(r, name, orgs)
    fn(c)
    return c.to_dict(idx)


def check_call(call):
    for t in call["turns"]:
        text = t["text"]
        spans = []
        for e in t["entities"]:
            assert 0 <= e["begin"] < e["end"] <= len(text), e
            s = text[e["begin"]:e["end"]]
            assert s == s.strip() and (s[-1] not in ",;:?!" or e["type"] == "PASSWORD"), (call["id"], s)
            assert not s.endswith(".") or s.endswith(("a.m.", "p.m.")), (call["id"], s)
            spans.append((e["begin"], e["end"]))
        for n in t["negatives"]:
            assert 0 <= n["begin"] < n["end"] <= len(text), n
            spans.append((n["begin"], n["end"]))
        spans.sort()
        for a, b in zip(spans, spans[1:]):
            assert a[1] <= b[0], (call["id"], text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--calls", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--stats", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ents, negs, scen, turns = Counter(), Counter(), Counter(), 0
    with out.open("w", encoding="utf-8") as f:
        for i in range(1, args.calls + 1):
            call = make_call(args.seed, i)
            check_call(call)
            f.write(json.dumps(call, ensure_ascii=False) + "\n")
            scen[call["scenario"]] += 1
            for t in call["turns"]:
                turns += 1
                ents.update(e["type"] for e in t["entities"])
                negs.update(n["kind"] for n in t["negatives"])
    if args.stats:
        print(f"calls {args.calls}  turns {turns}  -> {out}")
        print("entities:")
        for k, v in sorted(ents.items()):
            print(f"  {k:22} {v}")
        print(f"  {'total':22} {sum(ents.values())}")
        print("negatives:")
        for k, v in sorted(negs.items()):
            print(f"  {k:22} {v}")
        print("scenarios:")
        for k, v in sorted(scen.items()):
            print(f"  {k:22} {v}")


if __name__ == "__main__":
    main()
