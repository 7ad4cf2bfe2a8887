//! Digit runs, written ("555-456-7890", "(206) 555 0147", "+44 20 7946 0958") or spoken ("five five
//! five, four five six"), and what they are: the format decides when it can (a Luhn-valid 16 digits
//! is a card, ddd-dd-dddd is an SSN), the cue decides when it cannot (`1111` after "last four of your
//! Social Security number" is an SSN; the same digits after "order number" are nothing).

use crate::Candidate;
use crate::cues::{Cue, CueContext};
use crate::entity::EntityType;
use crate::validate;

/// One run of digits and the shape it was written in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DigitRun {
    pub start: usize,
    pub end: usize,
    pub digits: Vec<u8>,
    /// Lengths of the written digit groups (empty when all spoken).
    pub groups: Vec<usize>,
    pub spoken: bool,
    pub plus: bool,
    pub paren: bool,
}

const SPOKEN: &[(&str, u8)] = &[
    ("zero", b'0'),
    ("oh", b'0'),
    ("one", b'1'),
    ("two", b'2'),
    ("three", b'3'),
    ("four", b'4'),
    ("five", b'5'),
    ("six", b'6'),
    ("seven", b'7'),
    ("eight", b'8'),
    ("nine", b'9'),
];

enum Atom {
    Digits(usize),
    /// Digits with an extension after them: the digits' length; the run ends after it.
    Extension(usize),
    Word(u8),
    Repeat(usize),
}

/// The atom at `at`, and where it ends.
fn atom(text: &str, at: usize) -> Option<(Atom, usize)> {
    let bytes = text.as_bytes();
    if bytes[at].is_ascii_digit() {
        let end = at + bytes[at..].iter().take_while(|b| b.is_ascii_digit()).count();
        let attached = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphabetic() || *b >= 0x80);
        // A phone's extension ("3560x4587") belongs to the run, its digits do not.
        let extension = bytes.get(end) == Some(&b'x')
            && bytes.get(end + 1).is_some_and(u8::is_ascii_digit)
            && !bytes[end + 1..]
                .iter()
                .find(|b| !b.is_ascii_digit())
                .is_some_and(u8::is_ascii_alphabetic);
        if attached(at.checked_sub(1).and_then(|i| bytes.get(i)))
            || (attached(bytes.get(end)) && !extension)
        {
            return None;
        }
        if extension {
            let tail = end + 1 + bytes[end + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
            return Some((Atom::Extension(end - at), tail));
        }
        return Some((Atom::Digits(end - at), end));
    }
    if at > 0 && bytes[at - 1].is_ascii_alphabetic() {
        return None;
    }
    let end = at + bytes[at..].iter().take_while(|b| b.is_ascii_alphabetic()).count();
    let word = &text[at..end];
    if let Some((_, digit)) = SPOKEN.iter().find(|(w, _)| w.eq_ignore_ascii_case(word)) {
        return Some((Atom::Word(*digit), end));
    }
    if word.eq_ignore_ascii_case("double") {
        Some((Atom::Repeat(2), end))
    } else if word.eq_ignore_ascii_case("triple") {
        Some((Atom::Repeat(3), end))
    } else {
        None
    }
}

/// Every digit run in `text`: numerals and digit words joined by spaces, hyphens, dots, commas or
/// brackets. Amounts, times, dates and numbers glued to letters (`W2`) are left out.
pub(crate) fn digit_runs(text: &str) -> Vec<DigitRun> {
    let bytes = text.as_bytes();
    let mut runs = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let b = bytes[at];
        let starts_atom = b.is_ascii_digit()
            || (b.is_ascii_alphabetic() && (at == 0 || !bytes[at - 1].is_ascii_alphabetic()));
        if !starts_atom {
            at += 1;
            continue;
        }
        match run_at(text, at) {
            Some(run) => {
                at = run.end;
                if keep(text, &run) {
                    runs.push(run);
                }
            }
            None => {
                at += 1;
                while at < bytes.len() && bytes[at].is_ascii_alphanumeric() {
                    at += 1;
                }
            }
        }
    }
    runs
}

fn run_at(text: &str, start: usize) -> Option<DigitRun> {
    let bytes = text.as_bytes();
    let mut run = DigitRun {
        start,
        end: start,
        digits: Vec::new(),
        groups: Vec::new(),
        spoken: false,
        plus: false,
        paren: false,
    };
    let mut spoken_atoms = 0;
    let mut repeat = 1;
    let mut at = start;
    while let Some((atom, end)) = atom(text, at) {
        match atom {
            Atom::Digits(len) => {
                run.digits.extend(std::iter::repeat_n(&bytes[at..end], repeat).flatten());
                run.groups.push(len);
                repeat = 1;
            }
            Atom::Extension(len) => {
                run.digits.extend(&bytes[at..at + len]);
                run.groups.push(len);
                run.end = end;
                break;
            }
            Atom::Word(digit) => {
                // "oh" is a digit only inside a number ("five oh three"), never "Oh, I see".
                if digit == b'0'
                    && text[at..end].eq_ignore_ascii_case("oh")
                    && run.digits.is_empty()
                {
                    break;
                }
                run.digits.extend(std::iter::repeat_n(digit, repeat));
                spoken_atoms += repeat;
                repeat = 1;
            }
            Atom::Repeat(times) => repeat = times,
        }
        run.end = end;
        // Separators: up to three of space , - . ( ) between atoms.
        let gap = bytes[end..]
            .iter()
            .take(4)
            .take_while(|b| matches!(b, b' ' | b',' | b'-' | b'.' | b'(' | b')'))
            .count();
        if gap == 0 || gap > 3 || end + gap >= bytes.len() {
            break;
        }
        at = end + gap;
        if !(bytes[at].is_ascii_alphanumeric()) {
            break;
        }
    }
    if run.digits.is_empty() {
        return None;
    }
    // A run of spoken digits needs three of them: "one" alone is a pronoun, "two or three" a count.
    run.spoken = spoken_atoms > 0;
    if run.groups.is_empty() && spoken_atoms < 3 {
        return None;
    }
    if start > 0 && bytes[start - 1] == b'+' {
        run.plus = true;
        run.start -= 1;
    } else if start > 0 && bytes[start - 1] == b'(' && bytes.get(start + 3) == Some(&b')') {
        run.paren = true;
        run.start -= 1;
    }
    Some(run)
}

/// Leaves out amounts ($5, 20%), times (2:30, 5 pm), dates (10/12) and ordinals (3rd).
fn keep(text: &str, run: &DigitRun) -> bool {
    let bytes = text.as_bytes();
    let before = run.start.checked_sub(1).map(|i| bytes[i]);
    let after = bytes.get(run.end).copied();
    if matches!(before, Some(b'$' | b'/' | b':' | b'#'))
        || matches!(after, Some(b'%' | b'/' | b':'))
    {
        return false;
    }
    let next = text[run.end..]
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic() && c != '.')
        .next()
        .unwrap_or("");
    let next = next.trim_end_matches('.').to_ascii_lowercase();
    !matches!(
        next.as_str(),
        "dollars"
            | "dollar"
            | "cents"
            | "percent"
            | "bucks"
            | "am"
            | "pm"
            | "a.m"
            | "p.m"
            | "o"
            | "minutes"
            | "hours"
            | "days"
            | "weeks"
            | "months"
            | "years"
            | "st"
            | "nd"
            | "rd"
            | "th"
    )
}

fn written_as(run: &DigitRun, groups: &[usize]) -> bool {
    !run.spoken && run.groups == groups
}

/// What the run is, and how sure: the cue first where its length fits, else the format alone.
pub(crate) fn classify(run: &DigitRun, cue: Option<Cue>) -> Option<(EntityType, f32)> {
    let d = &run.digits[..];
    let n = d.len();
    if let Some(cue) = cue {
        let by_cue = match cue {
            Cue::NotPii => return None,
            Cue::Ssn if n == 9 => {
                Some((EntityType::Ssn, if validate::ssn(d) { 0.97 } else { 0.85 }))
            }
            Cue::Ssn | Cue::Itin if n == 4 => Some((
                if cue == Cue::Ssn {
                    EntityType::Ssn
                } else {
                    EntityType::UsIndividualTaxIdentificationNumber
                },
                0.9,
            )),
            Cue::Itin if n == 9 => Some((
                EntityType::UsIndividualTaxIdentificationNumber,
                if validate::itin(d) { 0.97 } else { 0.85 },
            )),
            Cue::Card if (4..=19).contains(&n) => Some((
                EntityType::CreditDebitNumber,
                if validate::luhn(d) && n >= 13 { 0.98 } else { 0.88 },
            )),
            Cue::Cvv if (3..=4).contains(&n) => Some((EntityType::CreditDebitCvv, 0.9)),
            Cue::Expiry if n == 4 || n == 6 => Some((EntityType::CreditDebitExpiry, 0.85)),
            Cue::Account if (4..=17).contains(&n) && !(n == 10 && looks_like_phone(run)) => {
                Some((EntityType::BankAccountNumber, 0.88))
            }
            Cue::Routing if n == 9 || n == 4 => {
                Some((EntityType::BankRouting, if validate::aba_routing(d) { 0.97 } else { 0.8 }))
            }
            Cue::Pin if (4..=6).contains(&n) => Some((EntityType::Pin, 0.9)),
            Cue::Phone if n == 4 || (7..=15).contains(&n) => Some((EntityType::Phone, 0.92)),
            Cue::Zip | Cue::Address if n == 5 || n == 9 => Some((EntityType::Address, 0.85)),
            Cue::Age
                if (1..=3).contains(&n)
                    && d.iter().fold(0u32, |v, b| v * 10 + u32::from(b - b'0')) <= 120 =>
            {
                Some((EntityType::Age, 0.85))
            }
            Cue::Birth if (6..=8).contains(&n) => Some((EntityType::DateTime, 0.8)),
            Cue::Passport if (6..=9).contains(&n) => Some((EntityType::PassportNumber, 0.88)),
            Cue::DriverId if (5..=15).contains(&n) => Some((EntityType::DriverId, 0.88)),
            Cue::Plate if (2..=8).contains(&n) => Some((EntityType::LicensePlate, 0.8)),
            Cue::Password if n >= 4 => Some((EntityType::Password, 0.8)),
            Cue::Username if n >= 4 => Some((EntityType::Username, 0.75)),
            _ => None,
        };
        if by_cue.is_some() {
            return by_cue;
        }
    }
    by_format(run)
}

fn looks_like_phone(run: &DigitRun) -> bool {
    run.paren
        || run.plus
        || written_as(run, &[3, 3, 4])
        || (run.digits.len() == 10 && validate::nanp(&run.digits) && run.spoken)
}

fn by_format(run: &DigitRun) -> Option<(EntityType, f32)> {
    let d = &run.digits[..];
    let n = d.len();
    if n == 9 && (written_as(run, &[3, 2, 4]) || (run.spoken && validate::ssn(d))) {
        if validate::itin(d) {
            return Some((EntityType::UsIndividualTaxIdentificationNumber, 0.9));
        }
        if validate::ssn(d) {
            return Some((EntityType::Ssn, if run.spoken { 0.7 } else { 0.92 }));
        }
    }
    if (13..=19).contains(&n) && validate::luhn(d) && !run.plus {
        return Some((EntityType::CreditDebitNumber, 0.95));
    }
    let national = if n == 11 && d[0] == b'1' { &d[1..] } else { d };
    if national.len() == 10
        && validate::nanp(national)
        && (run.spoken || run.paren || run.plus || run.groups.len() >= 2 || n == 10)
    {
        return Some((EntityType::Phone, 0.9));
    }
    if run.plus && (8..=15).contains(&n) {
        return Some((EntityType::Phone, 0.9));
    }
    if n == 7 && written_as(run, &[3, 4]) {
        return Some((EntityType::Phone, 0.6));
    }
    // National formats elsewhere: "0494 92 82 32", "03.93.92.16.85", "60-56-85-91", "21 253 109
    // 8211" (but not a date written 2003-08-28).
    let grouped = !run.spoken && run.groups.iter().all(|g| (2..=4).contains(g));
    let date = matches!(run.groups[..], [4, 2, 2] | [2, 2, 4]);
    if grouped
        && !date
        && (8..=12).contains(&n)
        && (run.groups.len() >= 3 || (d[0] == b'0' && run.groups.len() >= 2))
    {
        return Some((EntityType::Phone, 0.7));
    }
    None
}

/// Candidates from the digit runs of one turn.
pub(crate) fn find(text: &str, cues: CueContext<'_>, out: &mut Vec<Candidate>) {
    for run in digit_runs(text) {
        if let Some((kind, score)) = classify(&run, cues.at(run.start)) {
            out.push(Candidate { start: run.start, end: run.end, kind, score });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(text: &str) -> Vec<(String, String)> {
        digit_runs(text)
            .into_iter()
            .map(|r| {
                (text[r.start..r.end].to_owned(), String::from_utf8(r.digits).expect("digits"))
            })
            .collect()
    }

    #[test]
    fn finds_written_and_spoken_runs_and_skips_amounts_times_and_ids() {
        assert_eq!(runs("It's 555-456-7890."), [("555-456-7890".into(), "5554567890".into())]);
        assert_eq!(
            runs("call (206) 555 0147 now"),
            [("(206) 555 0147".into(), "2065550147".into())]
        );
        assert_eq!(runs("+44 20 7946 0958"), [("+44 20 7946 0958".into(), "442079460958".into())]);
        assert_eq!(
            runs("it's five five five, four five six, seven eight nine oh."),
            [("five five five, four five six, seven eight nine oh".into(), "5554567890".into())]
        );
        assert_eq!(runs("double five one two"), [("double five one two".into(), "5512".into())]);
        assert!(
            runs("Oh, one or two of them, my W2, $25.50, 20%, at 2:30, 5 pm, on 10/12, the 3rd")
                .is_empty()
        );
    }

    #[test]
    fn format_decides_when_no_cue_does() {
        let class =
            |text: &str, cue| digit_runs(text).first().and_then(|r| classify(r, cue)).map(|c| c.0);
        assert_eq!(class("555-456-7890", None), Some(EntityType::Phone));
        assert_eq!(class("123-45-6789", None), Some(EntityType::Ssn));
        assert_eq!(class("4111 1111 1111 1111", None), Some(EntityType::CreditDebitNumber));
        assert_eq!(class("4111 1111 1111 1112", None), None);
        assert_eq!(class("1111", None), None);
        assert_eq!(class("1111", Some(Cue::Ssn)), Some(EntityType::Ssn));
        assert_eq!(class("1111", Some(Cue::Card)), Some(EntityType::CreditDebitNumber));
        assert_eq!(class("555-123-4567", Some(Cue::NotPii)), None);
        assert_eq!(class("021000021", Some(Cue::Routing)), Some(EntityType::BankRouting));
        assert_eq!(class("555-456-7890", Some(Cue::Ssn)), Some(EntityType::Phone));
        // Other countries' national formats, and extensions; a date is none of them.
        for phone in ["0494 92 82 32", "03.93.92.16.85", "60-56-85-91", "21 253 109 8211"] {
            assert_eq!(class(phone, None), Some(EntityType::Phone), "{phone}");
        }
        assert_eq!(class("2003-08-28", None), None);
        assert_eq!(class("9472 7916", Some(Cue::Phone)), Some(EntityType::Phone));
        assert_eq!(
            runs("call 345-899-3560x4587 now"),
            [("345-899-3560x4587".into(), "3458993560".into())]
        );
        assert_eq!(class("345-899-3560x4587", None), Some(EntityType::Phone));
        assert!(runs("model 3560x4587b").is_empty());
    }
}
