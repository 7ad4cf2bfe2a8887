//! Cue phrases: the words around a bare value that say what it is ("the last four digits of your
//! Social Security number?" → `1111` is an SSN). The same digits are a card, an account, a PIN or an
//! order number depending on what was asked, often in the other speaker's previous turn.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

/// What a cue says the next value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cue {
    Ssn,
    Itin,
    Card,
    Cvv,
    Expiry,
    Account,
    Routing,
    Pin,
    Phone,
    Zip,
    Address,
    Age,
    Birth,
    Passport,
    DriverId,
    Plate,
    Username,
    Password,
    Email,
    Vin,
    Swift,
    Iban,
    /// Asked for a name or its spelling.
    Name,
    /// An order, ticket, tracking, case or confirmation number, an amount: not PII.
    NotPii,
    /// "last four", "ending in": the type is the cue that follows ("the last four of the card on
    /// the account" asks for a card).
    LastFour,
}

const PHRASES: &[(&str, Cue)] = &[
    ("social security", Cue::Ssn),
    ("social", Cue::Ssn),
    ("ssn", Cue::Ssn),
    ("s.s.n", Cue::Ssn),
    ("itin", Cue::Itin),
    ("taxpayer identification", Cue::Itin),
    ("tax id", Cue::Itin),
    ("tax identification", Cue::Itin),
    ("card", Cue::Card),
    ("credit", Cue::Card),
    ("debit", Cue::Card),
    ("visa", Cue::Card),
    ("mastercard", Cue::Card),
    ("amex", Cue::Card),
    ("american express", Cue::Card),
    ("cvv", Cue::Cvv),
    ("cvc", Cue::Cvv),
    ("security code", Cue::Cvv),
    ("three digit code", Cue::Cvv),
    ("three-digit code", Cue::Cvv),
    ("3 digit code", Cue::Cvv),
    ("3-digit code", Cue::Cvv),
    ("code on the back", Cue::Cvv),
    // Alone, after card questions ("and the code is 897"); "zip code" and "confirmation code" are
    // longer phrases and win.
    ("code", Cue::Cvv),
    ("expiration", Cue::Expiry),
    ("expiry", Cue::Expiry),
    ("expires", Cue::Expiry),
    ("exp date", Cue::Expiry),
    ("valid thru", Cue::Expiry),
    ("valid through", Cue::Expiry),
    ("account", Cue::Account),
    ("acct", Cue::Account),
    ("checking", Cue::Account),
    ("savings", Cue::Account),
    ("routing", Cue::Routing),
    ("aba", Cue::Routing),
    ("transit number", Cue::Routing),
    ("pin", Cue::Pin),
    ("passcode", Cue::Pin),
    ("pass code", Cue::Pin),
    ("phone", Cue::Phone),
    ("telephone", Cue::Phone),
    ("cell", Cue::Phone),
    ("mobile", Cue::Phone),
    ("callback", Cue::Phone),
    ("call back", Cue::Phone),
    ("call you back", Cue::Phone),
    ("reach you", Cue::Phone),
    ("reach me", Cue::Phone),
    ("call me", Cue::Phone),
    ("text me", Cue::Phone),
    ("ring me", Cue::Phone),
    ("messages to", Cue::Phone),
    ("answering at", Cue::Phone),
    ("contact number", Cue::Phone),
    ("fax", Cue::Phone),
    ("zip", Cue::Zip),
    ("zip code", Cue::Zip),
    ("zipcode", Cue::Zip),
    ("postal code", Cue::Zip),
    ("address", Cue::Address),
    ("live at", Cue::Address),
    ("how old", Cue::Age),
    ("your age", Cue::Age),
    ("date of birth", Cue::Birth),
    ("birth date", Cue::Birth),
    ("birthdate", Cue::Birth),
    ("birthday", Cue::Birth),
    ("born", Cue::Birth),
    ("dob", Cue::Birth),
    ("passport", Cue::Passport),
    ("driver's license", Cue::DriverId),
    ("driver’s license", Cue::DriverId),
    ("drivers license", Cue::DriverId),
    ("driver license", Cue::DriverId),
    ("driver's licence", Cue::DriverId),
    ("license number", Cue::DriverId),
    ("licence number", Cue::DriverId),
    ("license plate", Cue::Plate),
    ("licence plate", Cue::Plate),
    ("plate number", Cue::Plate),
    ("plate", Cue::Plate),
    ("tag number", Cue::Plate),
    ("username", Cue::Username),
    ("user name", Cue::Username),
    ("user id", Cue::Username),
    ("userid", Cue::Username),
    ("login", Cue::Username),
    ("screen name", Cue::Username),
    ("password", Cue::Password),
    ("passphrase", Cue::Password),
    ("email", Cue::Email),
    ("e-mail", Cue::Email),
    ("vin", Cue::Vin),
    ("vehicle identification", Cue::Vin),
    ("swift", Cue::Swift),
    ("bic", Cue::Swift),
    ("iban", Cue::Iban),
    ("your name", Cue::Name),
    ("first name", Cue::Name),
    ("last name", Cue::Name),
    ("full name", Cue::Name),
    ("surname", Cue::Name),
    ("spell", Cue::Name),
    ("spelled", Cue::Name),
    ("spelling", Cue::Name),
    ("last four", Cue::LastFour),
    ("last 4", Cue::LastFour),
    ("ending in", Cue::LastFour),
    ("ends in", Cue::LastFour),
    ("ending with", Cue::LastFour),
    ("hold number", Cue::NotPii),
    ("pickup number", Cue::NotPii),
    ("receipt", Cue::NotPii),
    ("record locator", Cue::NotPii),
    ("confirmation code", Cue::NotPii),
    ("order", Cue::NotPii),
    ("ticket", Cue::NotPii),
    ("tracking", Cue::NotPii),
    ("case number", Cue::NotPii),
    ("case", Cue::NotPii),
    ("confirmation", Cue::NotPii),
    ("reference", Cue::NotPii),
    ("claim", Cue::NotPii),
    ("invoice", Cue::NotPii),
    ("policy", Cue::NotPii),
    ("reservation", Cue::NotPii),
    ("booking", Cue::NotPii),
    ("model number", Cue::NotPii),
    ("serial", Cue::NotPii),
    ("item number", Cue::NotPii),
    ("sku", Cue::NotPii),
    ("extension", Cue::NotPii),
    ("flight", Cue::NotPii),
    ("transaction", Cue::NotPii),
    ("balance", Cue::NotPii),
    ("amount", Cue::NotPii),
    ("invoice number", Cue::NotPii),
    ("account number is the same", Cue::NotPii),
];

/// Finds cue phrases as whole words, case-insensitively.
#[derive(Debug)]
pub(crate) struct CueFinder {
    automaton: AhoCorasick,
}

impl CueFinder {
    pub fn new() -> Self {
        let automaton = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(PHRASES.iter().map(|(phrase, _)| phrase))
            .expect("the cue phrases build an automaton");
        Self { automaton }
    }

    /// Every cue in `text`, as (byte offset of its end, cue), in order.
    pub fn find(&self, text: &str) -> Vec<(usize, Cue)> {
        let bytes = text.as_bytes();
        self.automaton
            .find_iter(text)
            .filter(|m| {
                let before = m.start().checked_sub(1).map(|i| bytes[i]);
                let after = bytes.get(m.end()).copied();
                // Whole words, but "cards", "accounts" and "emailed" still count.
                !before.is_some_and(|b| b.is_ascii_alphanumeric())
                    && !after.is_some_and(|b| {
                        b.is_ascii_alphanumeric() && !matches!(b, b's' | b'e' | b'd')
                    })
            })
            .map(|m| (m.end(), PHRASES[m.pattern().as_usize()].1))
            .filter(|&(end, cue)| cue != Cue::NotPii || names_a_number(text, end))
            .collect()
    }
}

/// Whether an order, case, flight... phrase ending at `end` names a number ("order number",
/// "ticket #", "order 12345") rather than the thing ("a mobile number in case of delays").
fn names_a_number(text: &str, end: usize) -> bool {
    let rest = text[end..].trim_start_matches('s').trim_start();
    let word = rest
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '#')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    text[..end].ends_with("number")
        || rest.starts_with(|c: char| c.is_ascii_digit() || c == '#')
        || matches!(
            word.as_str(),
            "number" | "numbers" | "no" | "id" | "code" | "reference" | "is" | "#"
        )
}

/// How far (bytes) a cue reaches forward in its own turn.
const OWN_REACH: usize = 160;

/// The cues of a turn and of the turns before it, asked "what is the value at this position?".
#[derive(Debug, Clone, Copy)]
pub(crate) struct CueContext<'a> {
    /// This turn's cues.
    pub own: &'a [(usize, Cue)],
    /// The cues of the nearest earlier turn (of the last two) that has any.
    pub before: &'a [(usize, Cue)],
}

impl CueContext<'_> {
    /// The cue nearest before byte `at` in this turn, else the last cue of the turn before.
    pub fn at(&self, at: usize) -> Option<Cue> {
        // Cues are in text order: the nearest before `at` is the last of those ending by it.
        let before = &self.own[..self.own.partition_point(|(end, _)| *end <= at)];
        before
            .iter()
            .rev()
            .find(|(_, cue)| *cue != Cue::LastFour)
            .filter(|(end, _)| at - *end <= OWN_REACH)
            .map(|(_, cue)| *cue)
            .or_else(|| self.asked())
    }

    /// What the turn before asked for: the cue after its "last four", else its last cue.
    pub fn asked(&self) -> Option<Cue> {
        let after_last_four = self
            .before
            .iter()
            .skip_while(|(_, cue)| *cue != Cue::LastFour)
            .find(|(_, cue)| *cue != Cue::LastFour);
        // Otherwise the first specific thing asked for ("the username on the account", "the
        // account PIN"), else the last cue.
        let specific = || {
            self.before
                .iter()
                .find(|(_, cue)| !matches!(cue, Cue::LastFour | Cue::Account | Cue::Card))
        };
        after_last_four
            .or_else(specific)
            .or_else(|| self.before.iter().rev().find(|(_, cue)| *cue != Cue::LastFour))
            .map(|(_, cue)| *cue)
    }

    /// Whether `cue` is anywhere in this turn or the turn before.
    pub fn mentions(&self, cue: Cue) -> bool {
        self.own.iter().chain(self.before).any(|(_, c)| *c == cue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_cue_wins_and_previous_turn_fills_in() {
        let finder = CueFinder::new();
        let asked = finder
            .find("Can you please confirm the last four digits of your Social Security number?");
        assert_eq!(asked.last().map(|c| c.1), Some(Cue::Ssn));
        let answer = finder.find("Yes, it's 1111.");
        let context = CueContext { own: &answer, before: &asked };
        assert_eq!(context.at(10), Some(Cue::Ssn));

        let own = finder.find("My cards are fine but the order number is 555-123-4567");
        let context = CueContext { own: &own, before: &[] };
        assert_eq!(context.at(42), Some(Cue::NotPii));
        assert_eq!(context.at(9), Some(Cue::Card));
        assert!(finder.find("pinned to the scratchcard").is_empty());
    }
}
