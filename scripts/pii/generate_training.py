#!/usr/bin/env python3
"""Labelled training sentences for the PII detector's learned name and address tagger.

The tagger (crates/pii/src/tagger.rs) is trained on what this script writes and evaluated on data
it never saw: the held-out calls of `generate_calls.py` (other templates, other name lists, other
seed) and presidio-research's `synth_dataset_v2.json` (other templates). Keep it that way: do not
copy templates from either, and never train on their files.

Output: JSON Lines in the shape `generate_calls.py` writes (`id`, `turns` of `role`, `text`,
`entities` with Comprehend type names and code-point offsets, end exclusive), so the same reader
takes both. Only NAME and ADDRESS are labelled, because only they are learned; the other PII in a
sentence is there as context and stays unlabelled for the tagger. Values come from Faker (names,
streets, cities and postcodes of many countries, so that the tagger learns the contexts and shapes
of names rather than a list) and from this script's own words.

    .venv-pii-train/bin/python scripts/pii/generate_training.py --seed 1207 --groups 9000 \
        --out target/pii-train.jsonl

`scripts/pii/train-tagger.sh` installs Faker, runs this and trains the model. Same seed, same
Faker version: same file, byte for byte.
"""

import argparse
import json
import os
import random
import sys

from faker import Faker

LOCALES = ["en_US", "en_US", "en_US", "en_GB", "en_CA", "en_AU", "en_IE", "de_DE", "fr_FR",
           "es_ES", "es_MX", "it_IT", "pt_BR", "pt_PT", "nl_NL", "pl_PL", "cs_CZ", "hu_HU",
           "fi_FI", "sv_SE", "da_DK", "no_NO", "tr_TR", "ro_RO", "sk_SK", "hr_HR", "sl_SI",
           "et_EE", "lv_LV", "lt_LT", "id_ID", "fil_PH", "en_IN", "vi_VN"]

# A person, in the ways people are named on calls and in text. `{p}` is the person.
NAME_LINES = [
    "yeah this is {p}", "{p} speaking", "you're talking to {p}", "it's {p} here",
    "the account holder is {p}", "it should be under {p}", "put it under {p} please",
    "I'm calling on behalf of {p}", "{p} asked me to call", "my husband {p} set it up",
    "my wife {p} is on the line too", "my son {p} uses that card", "I spoke to {p} last week",
    "someone named {p} helped me", "the technician was {p}", "ask for {p} when you get there",
    "{p} is my landlord", "I'd like to add {p} as an authorized user", "remove {p} from the plan",
    "{p} will be picking it up", "ship it to the attention of {p}", "attention {p}",
    "okay {p}, let me check that", "sure thing {p}", "got it, {p}", "thanks so much {p}",
    "one moment {p}", "{p}, are you still there?", "alright {p}, you're all set",
    "I appreciate your patience, {p}", "good morning {p}", "hi {p}, welcome back",
    "is {p} available?", "can I speak with {p}?", "I need to reach {p}", "I'll transfer you to {p}",
    "the check was made out to {p}", "it's addressed to {p}", "the beneficiary is {p}",
    "{p} is the primary on the account", "my manager {p} approved it", "Dear {p},",
    "Regards, {p}", "Best wishes, {p}", "Sincerely,\n{p}", "From: {p}", "To: {p}",
    "signed by {p}", "witnessed by {p}", "prepared by {p}", "{p} wrote to us about the delay",
    "{p} said the package never arrived", "according to {p}, the meter was read twice",
    "{p} and I share the account", "me and {p} both got the letter",
    "the appointment is for {p}", "the patient's name is {p}", "the doctor is {p}",
    "{p} was born in the spring", "we met {p} at the branch", "have {p} give us a call back",
    "{p} confirmed the change", "{p} has been a customer for years", "I'm {p}'s daughter",
    "that's {p}'s phone", "{p}'s card was declined", "please cc {p} on the email",
    "the reservation is under the name {p}", "last name {p}", "first name {p}",
    "surname is {p}", "full name {p}", "name on the card is {p}", "yes, {p}", "{p}",
    "{p}?", "oh hi {p}", "no, it's {p}", "it's spelled the usual way, {p}",
    "the owner, {p}, moved out", "{p} from accounting called", "I was helped by {p} yesterday",
    "{p} recommended you", "who is {p}?", "{p} isn't home right now", "tell {p} I called",
    "we sent it to {p} last month", "{p} handles the bills", "{p} told me to call this number",
]

# Two people in one sentence.
PAIR_LINES = [
    "{p} and {q} are both on the lease", "{p} or {q} can sign for it",
    "it's a joint account with {p} and {q}", "{p} transferred it to {q}",
    "{p}, {q} and I went together", "between {p} and {q}, nobody paid",
    "{p} said {q} would handle it", "the kids are {p} and {q}",
]

# An address. `{a}` is the address.
ADDRESS_LINES = [
    "I live at {a}", "we just moved to {a}", "the new address is {a}", "send it to {a}",
    "ship it to {a} please", "my billing address is {a}", "the mailing address is {a}",
    "it's {a}", "{a}", "the property is at {a}", "deliver to {a}", "the service address is {a}",
    "our office is at {a}", "you can find us at {a}", "mail the check to {a}",
    "the old address was {a}", "forward my mail to {a}", "the house at {a} was sold",
    "I'm staying at {a} for now", "my parents' place, {a}", "the leak is at {a}",
    "the installer should go to {a}", "update it to {a}", "it's still {a}",
    "yes that's {a}", "return address: {a}", "Address:\n{a}", "Home: {a}",
    "pick up at {a}", "drop off at {a}", "the meter is at {a}", "it was stolen from {a}",
    "the statement went to {a} instead", "we are at {a}, near the park",
]

# Both.
BOTH_LINES = [
    "{p}, {a}", "{p}\n{a}", "send it to {p} at {a}", "{p} lives at {a}",
    "it's for {p}, {a}", "Name: {p}\nAddress: {a}", "{p} moved to {a} last year",
    "the card should go to {p}, {a}", "Bill to: {p}\n{a}",
]

# Sentences with capitalised words that are not people or addresses (the tagger must leave them).
NEGATIVE_LINES = [
    "I bought it at {c}", "{c} charged me twice", "I work for {c}", "is this {c}?",
    "thank you for calling {c}", "{c} customer service, how can I help?", "the {c} app keeps crashing",
    "I switched from {c} last year", "my employer is {c}", "we use {c} for shipping",
    "I'm flying to {city} on {day}", "the branch in {city} is closed", "I grew up in {city}",
    "it was shipped from {city}", "the {city} office called me", "we're driving to {city} tonight",
    "May I have a moment?", "Will you send a confirmation?", "Bill me at the end of the month",
    "Grace period ends on {day}", "I'll call back on {day}", "the due date is {month} {n}",
    "June and July are the busy months", "Mark it as paid please", "Rose gold, the bigger one",
    "Art supplies and some books", "Sterling silver, not plated", "Chase the payment for me",
    "Hope that helps", "Faith in the process, I guess", "Joy, another fee",
    "Victoria Day is a holiday", "the Lincoln Memorial was crowded", "Washington Mutual closed",
    "I ordered the Pro Max model", "the Wi-Fi router is a Netgear", "Windows keeps updating",
    "the Visa card ends in {n4}", "the Gold plan costs more", "Premium Plus was cheaper",
    "Order number {n6}", "ticket {n6} is still open", "Case ID {n6}", "Reference {n6}",
    "Hello?", "Okay.", "Yes, please.", "No, that's all.", "Great, thank you.", "Sure.",
    "Can you hear me?", "Sorry, say that again?", "Let me check.", "Perfect.", "Hmm, one second.",
    "The Internet is down again", "Customer Service transferred me", "Technical Support is busy",
    "the Main Street branch", "the Park Avenue location closed", "the Oak Street store",
    "the {c} Building lobby", "our {city} warehouse", "the {month} statement",
    "Good Morning America was on", "Happy New Year", "Merry Christmas to you too",
    "I read it in the {c} newsletter", "It's on Amazon", "it came through FedEx",
    "my Apple ID is locked", "the Google Pixel one", "a Samsung phone",
]

# Everyday call talk with no person or address in it: greetings, questions, amounts, times,
# durations and reference numbers, so that a capitalised first word or a number is not enough.
SMALL_TALK = [
    "Good morning, how are you doing today?", "Good evening, thanks for holding.",
    "Good afternoon, what can I do for you?", "Anything else I can help you with?",
    "Is there anything else?", "What seems to be the problem?", "When did this start happening?",
    "Where did you buy it?", "Why was I charged again?", "How long will that take?",
    "Which account is this for?", "Who did you speak with last time?", "Oh, I see.",
    "Oh okay, that makes sense.", "Yeah, that's right.", "Yep, go ahead.", "Nope, not yet.",
    "Alright, bear with me.", "All right, I'm back.", "Absolutely, I can do that.",
    "Honestly I'm not sure.", "Actually, never mind.", "Unfortunately that's not possible.",
    "Sorry about the wait.", "Thanks for your patience.", "Please hold for a moment.",
    "Do you have your account number handy?", "Do you have a pen?", "Can you repeat that?",
    "Could you spell that for me?", "Would you like a receipt by email?", "Is this a good time?",
    "It should arrive in {n} to {n} business days.", "That will take about {n} minutes.",
    "The refund of ${amount} was issued on {month} {n}.", "Your balance is {amount} dollars.",
    "It's {n} dollars and {cents} cents.", "There's a late fee of ${amount}.",
    "I was charged ${amount} twice.", "The total comes to ${amount} with tax.",
    "I paid {n} dollars for it.", "The deductible is ${amount}.", "That's {amount} a month.",
    "Your reference number is {code}.", "The confirmation code is {code}.",
    "I'm looking at ticket {code} right now.", "Claim {code} is still pending.",
    "Your order {n6} shipped yesterday.", "Tracking number {n6}, it's in transit.",
    "The model number is {code}.", "Error code {code} keeps popping up.",
    "We're open from {n} a.m. to {n} p.m.", "The appointment is at {n}:30 on {day}.",
    "I'll call you back on {day} morning.", "It expires at the end of {month}.",
    "Since {month} {n}, I think.", "Every {day} at noon.", "In {n} weeks or so.",
    "My router has {n} lights blinking.", "Press {n} for billing.", "Option {n}, please.",
    "I have {n} devices on the plan.", "We have {n} kids and a dog.", "Room {n} on the second floor.",
    "Flight {code} was delayed {n} hours.", "Gate {n}, terminal B.", "Seat {n}C please.",
    "It's a {n} pack of batteries.", "Size {n}, in blue.", "The {n} inch one.",
    "Yes. Yes it is.", "No, no, that's fine.", "Right, exactly.", "Okay, perfect.",
    "Great news, it went through.", "Awesome, thank you so much.", "Wonderful, have a good one.",
    "Let me pull up your account.", "Let me transfer you to billing.", "I'll escalate this.",
    "I'm going to put you on a brief hold.", "The system is slow today.", "It says pending.",
    "That's not what I was told.", "I want to cancel my subscription.", "I'd like to speak to a supervisor.",
    "I never got the confirmation email.", "The app won't let me log in.", "My card got declined.",
    "I need to reset my password.", "The package says delivered but it's not here.",
    "Can you waive the fee this time?", "I'd like to dispute a charge.", "Is there a cheaper plan?",
    "Mornings are better for me.", "Evenings after six work.", "Weekends are fine.",
    "Standard shipping is fine.", "Express, please.", "Paper statements, not online.",
    "Credit, not debit.", "The blue one, not the red one.", "Both of them.", "Neither, actually.",
    "Welcome to {c}.", "Thanks for choosing {c}.", "This call may be recorded for quality.",
    "Your call is important to us.", "Please stay on the line for a short survey.",
]
# Words that open sentences and are no one's name.
STARTERS = [
    "What", "Yeah", "Yes", "Let", "Let's", "How", "Bye", "Just", "Hello", "Hi", "Hey", "Alternatively",
    "Mine", "Absolutely", "Sure", "Okay", "Perfect", "Great", "Thanks", "Right", "Well", "So", "Also",
    "Actually", "Basically", "Maybe", "Probably", "Definitely", "Unfortunately", "Hopefully", "Finally",
    "First", "Then", "Next", "Now", "Today", "Tomorrow", "Yesterday", "Please", "Sorry", "Listen",
    "Look", "Hold", "Wait", "Goodbye", "Cheers", "Nothing", "Everything", "Something", "This", "That",
    "There", "Here", "It", "They", "We", "You", "He", "She", "My", "Your", "Our", "If", "When", "Where",
    "Why", "Which", "Who", "Could", "Would", "Should", "Did", "Does", "Do", "Is", "Are", "Was", "Have",
    "No", "Nope", "Yep", "One", "Two", "Three", "Nine", "Both", "Either", "Neither", "Any", "Some",
    "Otherwise", "Meanwhile", "Anyway", "Honestly", "Exactly", "Correct", "Awesome", "Wonderful",
    "Excellent", "Fine", "Cool", "Gotcha", "Understood", "Certainly", "Of course", "Got it",
]
# Organisations named after people: the surname is not a name there.
INDUSTRIES = [
    "Plumbing", "Books", "Insurance", "Motors", "Electronics", "Construction", "Dental", "Realty",
    "Logistics", "Foods", "Hardware", "Pharmacy", "Roofing", "Landscaping", "Bakery", "Florist",
    "Travel", "Cleaners", "Moving", "Auto Body", "Law Group", "Family Dentistry", "Credit Union",
    "Savings Bank", "Home Health", "Pet Clinic", "Outfitters", "Apparel", "Brewing", "Energy",
    "Telecom", "Wireless", "Cable", "Furniture", "Appliance Repair", "Tax Service", "Accounting",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
TITLES = ["Mr.", "Mrs.", "Ms.", "Dr.", "Miss", "Mr", "Mrs", "Ms", "Dr", "Professor"]
OPENERS = ["", "", "", "um ", "uh ", "so ", "okay ", "well ", "and ", "yeah "]
CLOSERS = [".", ".", ".", "", "?", "!", ", thanks.", " I think.", ", right?"]


class Writer:
    """Builds one text and the labelled spans in it, in code points."""

    def __init__(self):
        self.text = ""
        self.entities = []

    def add(self, part, kind=None):
        begin = len(self.text)
        self.text += part
        if kind and part.strip():
            self.entities.append({"type": kind, "begin": begin, "end": len(self.text)})


def person(fake, rng):
    first, last = fake.first_name(), fake.last_name()
    form = rng.random()
    if form < 0.30:
        name = f"{first} {last}"
    elif form < 0.50:
        name = first
    elif form < 0.60:
        name = last
    elif form < 0.70:
        name = f"{first} {rng.choice('ABCDEFGHJKLMNPRSTW')}. {last}"
    elif form < 0.75:
        name = f"{first} {rng.choice('ABCDEFGHJKLMNPRSTW')} {last}"
    elif form < 0.85:
        name = f"{first} {fake.last_name()}-{last}" if rng.random() < 0.3 else f"{first} {last}"
    else:
        name = f"{first} {fake.first_name()} {last}"
    title = rng.choice(TITLES) + " " if rng.random() < 0.12 else ""
    # Transcripts lower-case names now and then; shouting forms upper-case them.
    casing = rng.random()
    if casing < 0.06:
        name = name.lower()
    elif casing < 0.09:
        name = name.upper()
    return title, name


def address(fake, rng):
    form = rng.random()
    if form < 0.25:
        text = fake.street_address()
    elif form < 0.55:
        text = fake.address()
    elif form < 0.75:
        text = f"{fake.street_address()}, {fake.city()}"
    elif form < 0.9:
        text = f"{fake.street_address()}, {fake.city()} {fake.postcode()}"
    else:
        text = f"{fake.building_number()} {fake.street_name()}, {fake.postcode()} {fake.city()}"
    if "\n" in text and rng.random() < 0.5:
        text = text.replace("\n", ", ")
    if rng.random() < 0.05:
        text = text.lower()
    return text


def fill(template, rng, fake):
    """Writes `template`, replacing {p}, {q}, {a} and the negative placeholders."""
    w = Writer()
    w.add(rng.choice(OPENERS))
    rest = template
    while rest:
        start = rest.find("{")
        if start < 0:
            w.add(rest)
            break
        w.add(rest[:start])
        end = rest.index("}", start)
        key, rest = rest[start + 1:end], rest[end + 1:]
        if key in ("p", "q"):
            title, name = person(fake, rng)
            w.add(title)
            w.add(name, "NAME")
        elif key == "a":
            w.add(address(fake, rng), "ADDRESS")
        elif key == "c":
            w.add(fake.company() if rng.random() < 0.5 else f"{fake.last_name()} {rng.choice(INDUSTRIES)}")
        elif key == "city":
            w.add(fake.city())
        elif key == "day":
            w.add(rng.choice(DAYS))
        elif key == "month":
            w.add(rng.choice(MONTHS))
        elif key == "n":
            w.add(str(rng.randint(1, 28)))
        elif key == "n4":
            w.add(f"{rng.randint(0, 9999):04d}")
        elif key == "n6":
            w.add(str(rng.randint(100000, 99999999)))
        elif key == "amount":
            w.add(rng.choice([f"{rng.randint(1, 999)}", f"{rng.randint(1, 9999):,}.{rng.randint(0, 99):02d}",
                              f"{rng.randint(1, 500)}.{rng.randint(0, 99):02d}"]))
        elif key == "cents":
            w.add(str(rng.randint(1, 99)))
        elif key == "code":
            letters = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(rng.randint(1, 3)))
            w.add(rng.choice([f"{letters}{rng.randint(1000, 9999999)}", f"{letters}-{rng.randint(100, 99999)}",
                              f"{rng.randint(100, 999)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"]))
        else:
            raise KeyError(key)
    if not w.text.endswith(("?", ".", "!", ",")) and "\n" not in template:
        w.add(rng.choice(CLOSERS))
    if w.text:
        w.text = w.text[0].upper() + w.text[1:] if rng.random() < 0.85 else w.text
    return {"role": rng.choice(["AGENT", "CUSTOMER"]), "text": w.text, "entities": w.entities}


def group(i, seed, fakers):
    rng = random.Random(seed * 1_000_003 + i)
    fake = fakers[rng.randrange(len(fakers))]
    fake.seed_instance(seed * 7919 + i)
    turns = []
    for _ in range(rng.randint(1, 4)):
        pick = rng.random()
        if pick < 0.26:
            template = rng.choice(NAME_LINES)
        elif pick < 0.31:
            template = rng.choice(PAIR_LINES)
        elif pick < 0.45:
            template = rng.choice(ADDRESS_LINES)
        elif pick < 0.50:
            template = rng.choice(BOTH_LINES)
        elif pick < 0.84:
            template = rng.choice(NEGATIVE_LINES)
        elif pick < 0.92:
            template = rng.choice(SMALL_TALK)
        else:
            line = rng.choice(SMALL_TALK)
            template = f"{rng.choice(STARTERS)}, {line[0].lower()}{line[1:]}"
        turn = fill(template, rng, fake)
        # Turns often hold two sentences: a name ends at the first one's full stop.
        if turns and rng.random() < 0.35 and turns[-1]["text"].endswith((".", "?", "!")):
            shift = len(turns[-1]["text"]) + 1
            turns[-1]["text"] += " " + turn["text"]
            turns[-1]["entities"] += [
                {**e, "begin": e["begin"] + shift, "end": e["end"] + shift} for e in turn["entities"]
            ]
        else:
            turns.append(turn)
    return {"id": f"train-{i:05d}", "turns": turns}


def main():
    # Some of Faker's choices follow set order, which string hashing randomises per process: the
    # same seed gives the same file only with a fixed hash seed, so run again with one.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1207)
    parser.add_argument("--groups", type=int, default=9000)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    fakers = [Faker(locale) for locale in LOCALES]
    with open(args.out, "w", encoding="utf-8") as out:
        for i in range(args.groups):
            out.write(json.dumps(group(i, args.seed, fakers), ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
