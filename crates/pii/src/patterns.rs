//! Regular-expression recognisers for the types with a shape of their own: e-mails (written and
//! spoken), URLs, IP and MAC addresses, AWS keys, IBANs, SWIFT codes, VINs, dates and times, ages,
//! card expiry dates, and the values that follow "username is", "password is", "passport number is".

use regex::Regex;

use crate::Candidate;
use crate::cues::{Cue, CueContext};
use crate::entity::EntityType;
use crate::validate;

const MONTH: &str = r"(?:January|February|March|April|May|June|July|August|September|October|November|December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)\.?";
const ORDINAL: &str = r"(?:\d{1,2}(?:st|nd|rd|th)?|first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|twenty[- ](?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth)|thirtieth|thirty[- ]first)";
const YEAR: &str = r"(?:\d{4}|(?:nineteen|twenty)[- ](?:oh[- ])?[a-z]+(?:[- ][a-z]+)?|two thousand(?: and)?(?: [a-z]+(?:[- ][a-z]+)?)?)";
const NUMBER_WORD: &str = r"(?:(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:[- ](?:one|two|three|four|five|six|seven|eight|nine))?|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|one|two|three|four|five|six|seven|eight|nine)";

/// Words before "at <domain>" that make it a web site, not a spoken e-mail address.
const NOT_A_MAILBOX: &[&str] = &[
    "in", "it", "online", "us", "me", "them", "him", "her", "there", "here", "site", "website",
    "out", "up", "on", "back", "this", "that", "which", "email", "mail", "sign", "log", "logged",
    "find", "visit", "go", "check", "reach", "contact", "anytime", "page", "portal", "account",
    "form", "app", "directly", "login", "register", "signup", "apply", "pay", "order",
];

/// The compiled recognisers (built once per detector).
#[derive(Debug)]
pub(crate) struct Patterns {
    email: Regex,
    spoken_email: Regex,
    url: Regex,
    spoken_url: Regex,
    ipv4: Regex,
    ipv6: Regex,
    mac: Regex,
    aws_access: Regex,
    aws_secret: Regex,
    iban: Regex,
    swift: Regex,
    vin: Regex,
    dates: Vec<Regex>,
    month_after: Regex,
    age: Regex,
    expiry: Regex,
    value_after: Regex,
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("the detector's patterns compile")
}

impl Patterns {
    pub fn new() -> Self {
        let dates = vec![
            re(&format!(r"\b{MONTH}\s+{ORDINAL}\b(?:,?\s+{YEAR}\b)?")),
            re(&format!(r"\b(?:the\s+)?{ORDINAL}\s+of\s+{MONTH}(?:,?\s+{YEAR}\b)?")),
            re(&format!(r"\b{MONTH},?\s+\d{{4}}\b")),
            re(r"\b\d{1,2}[/-]\d{1,2}[/-](?:\d{4}|\d{2})\b|\b\d{4}-\d{2}-\d{2}\b"),
            re(
                r"\b(?:(?:next|last|this|on|coming)\s+)?(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)s?\b",
            ),
            re(r"(?i)\b\d{1,2}(?::\d{2})?\s?(?:[ap]\.m\.|[ap]m\b)|\b\d{1,2}:\d{2}\b"),
            re(
                r"(?i)\b(?:yesterday|tomorrow|the\s+day\s+(?:before|after)\s+(?:yesterday|tomorrow)|(?:next|last)\s+(?:week|month|year|weekend)|\d+\s+(?:days|weeks|months|years)\s+ago)\b",
            ),
        ];
        Self {
            email: re(
                r"\b[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
            ),
            spoken_email: re(
                r"(?i)\b[a-z0-9]+(?:\s+(?:dot|underscore|dash|hyphen)\s+[a-z0-9]+|[._][a-z0-9]+)*\s+at\s+[a-z0-9]+(?:(?:\s+dot\s+|\.)[a-z0-9]+)*(?:\s+dot\s+|\.)(?:com|net|org|edu|gov|io|co|us|biz|info|me|mail)\b",
            ),
            spoken_url: re(
                r"(?i)\b(?:www dot |w w w dot )?[a-z0-9-]+(?:\s+dot\s+[a-z0-9-]+)*\s+dot\s+(?:com|net|org|io|gov|edu|info|biz|us)\b(?:\s+slash\s+[a-z0-9/_-]+)*",
            ),
            url: re(
                r"(?i)\b(?:https?://|www\.)[^\s<>]+|\b[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:com|net|org|io|gov|edu|info|biz)(?:/[^\s]*)?",
            ),
            ipv4: re(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"),
            ipv6: re(r"(?i)(?:\b[0-9a-f]{1,4}|:)(?::[0-9a-f]{0,4}){2,7}\b"),
            mac: re(
                r"(?i)\b[0-9a-f]{2}(?:[:-][0-9a-f]{2}){5}\b|\b[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}\b",
            ),
            aws_access: re(r"\b(?:AKIA|ASIA|AIDA|AROA|AIPA|ANPA|ANVA|AGPA)[A-Z0-9]{16}\b"),
            aws_secret: re(r"(?:^|[^A-Za-z0-9/+])([A-Za-z0-9/+]{40})(?:$|[^A-Za-z0-9/+=])"),
            iban: re(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"),
            swift: re(r"\b[A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?\b"),
            vin: re(r"\b[A-HJ-NPR-Z0-9]{17}\b"),
            dates,
            month_after: re(&format!(
                r"\b(?:in|since|until|by|of|during|early|late|mid|last|next|this|through)\s+({MONTH})(?:\s+{ORDINAL})?\b"
            )),
            age: re(&format!(
                r"(?i)\b(\d{{1,3}}|{NUMBER_WORD})(?:[- ]years?[- ]old|\s+yrs?\s+old)\b|\b(?:age|aged)\s+(?:of\s+)?(\d{{1,3}})\b"
            )),
            expiry: re(r"\b(?:0?[1-9]|1[0-2])\s?/\s?(?:\d{4}|\d{2})\b"),
            value_after: re(
                r#"(?i)^[\s:,]*(?:(?:number|no\.|id|code|name)[\s:,]+)?((?:is|was|it's|it’s|its|it is|that's|that’s|would be|will be|yes|yeah|sure|okay|ok|so|um|uh)[\s:,]+)*["“']?([^\s"”]+)"#,
            ),
        }
    }

    /// Candidates for one turn.
    pub fn find(&self, text: &str, cues: CueContext<'_>, out: &mut Vec<Candidate>) {
        let mut push = |start, end, kind, score| out.push(Candidate { start, end, kind, score });
        let has_digit = text.bytes().any(|b| b.is_ascii_digit());
        if text.contains('@') {
            for m in self.email.find_iter(text) {
                push(m.start(), m.end(), EntityType::Email, 0.99);
            }
        }
        if contains_word(text, "at") && contains_word(text, "dot")
            || text.contains(" at ") && text.contains('.')
        {
            for m in self.spoken_email.find_iter(text) {
                // "sign in at example.com", "find it online at www.example.com": a place, not a mailbox.
                let local = m.as_str().split_whitespace().next().unwrap_or("").to_ascii_lowercase();
                let site = m.as_str().to_ascii_lowercase().contains(" at www");
                if !site && !NOT_A_MAILBOX.contains(&local.as_str()) {
                    push(m.start(), m.end(), EntityType::Email, 0.9);
                }
            }
        }
        if text.contains('.') {
            for m in self.url.find_iter(text) {
                let end = m.start()
                    + text[m.start()..m.end()].trim_end_matches(['.', ',', ')', '?', '!']).len();
                push(m.start(), end, EntityType::Url, 0.85);
            }
        }
        if contains_word(text, "dot") {
            for m in self.spoken_url.find_iter(text) {
                push(m.start(), m.end(), EntityType::Url, 0.8);
            }
        }
        if has_digit && text.contains('.') {
            for m in self.ipv4.find_iter(text) {
                if m.as_str().split('.').all(|octet| octet.parse::<u8>().is_ok()) {
                    push(m.start(), m.end(), EntityType::IpAddress, 0.97);
                }
            }
        }
        if text.contains(':') {
            for m in self.ipv6.find_iter(text) {
                if m.as_str().parse::<std::net::Ipv6Addr>().is_ok() {
                    push(m.start(), m.end(), EntityType::IpAddress, 0.97);
                }
            }
        }
        if text.contains([':', '-', '.']) {
            for m in self.mac.find_iter(text) {
                push(m.start(), m.end(), EntityType::MacAddress, 0.97);
            }
        }
        self.find_keys_and_codes(text, cues, has_digit, &mut push);
        self.find_dates(text, cues, has_digit, &mut push);
        self.find_cued_values(text, cues, &mut push);
    }

    fn find_keys_and_codes(
        &self,
        text: &str,
        cues: CueContext<'_>,
        has_digit: bool,
        push: &mut impl FnMut(usize, usize, EntityType, f32),
    ) {
        if !has_digit {
            return;
        }
        for m in self.aws_access.find_iter(text) {
            push(m.start(), m.end(), EntityType::AwsAccessKey, 0.97);
        }
        for caps in self.aws_secret.captures_iter(text) {
            let Some(m) = caps.get(1) else { continue };
            let s = m.as_str();
            let mixed = s.bytes().any(|b| b.is_ascii_lowercase())
                && s.bytes().any(|b| b.is_ascii_uppercase())
                && s.bytes().any(|b| b.is_ascii_digit());
            if mixed {
                let cued = text.to_ascii_lowercase().contains("secret");
                push(m.start(), m.end(), EntityType::AwsSecretKey, if cued { 0.95 } else { 0.75 });
            }
        }
        for m in self.iban.find_iter(text) {
            let compact: String = m.as_str().chars().filter(|c| *c != ' ').collect();
            if validate::iban(&compact) {
                push(m.start(), m.end(), EntityType::InternationalBankAccountNumber, 0.97);
            }
        }
        for m in self.vin.find_iter(text) {
            let s = m.as_str();
            let both =
                s.bytes().any(|b| b.is_ascii_digit()) && s.bytes().any(|b| b.is_ascii_uppercase());
            if both && (validate::vin(s) || cues.mentions(Cue::Vin)) {
                push(
                    m.start(),
                    m.end(),
                    EntityType::VehicleIdentificationNumber,
                    if validate::vin(s) { 0.96 } else { 0.8 },
                );
            }
        }
        for m in self.swift.find_iter(text) {
            let s = m.as_str().as_bytes();
            if cues.mentions(Cue::Swift)
                || s[6..].iter().any(u8::is_ascii_digit)
                    && s[..6].iter().all(u8::is_ascii_uppercase)
            {
                push(m.start(), m.end(), EntityType::SwiftCode, 0.85);
            }
        }
    }

    fn find_dates(
        &self,
        text: &str,
        cues: CueContext<'_>,
        has_digit: bool,
        push: &mut impl FnMut(usize, usize, EntityType, f32),
    ) {
        for (i, date) in self.dates.iter().enumerate() {
            // Patterns 3 and 5 need digits; the others have words of their own.
            if (i == 3 || i == 5) && !has_digit {
                continue;
            }
            for m in date.find_iter(text) {
                // A month and year (pattern 2) after "expiration" is a card's expiry; a date with a
                // day is a date, whatever expires on it.
                let kind = if i == 2 && cues.mentions(Cue::Expiry) {
                    EntityType::CreditDebitExpiry
                } else {
                    EntityType::DateTime
                };
                push(m.start(), m.end(), kind, 0.85);
            }
        }
        for caps in self.month_after.captures_iter(text) {
            if let (Some(all), Some(month)) = (caps.get(0), caps.get(1)) {
                push(month.start(), all.end(), EntityType::DateTime, 0.8);
            }
        }
        for caps in self.age.captures_iter(text) {
            if let Some(m) = caps.get(1).or_else(|| caps.get(2)) {
                push(m.start(), m.end(), EntityType::Age, 0.88);
            }
        }
        if has_digit && text.contains('/') {
            for m in self.expiry.find_iter(text) {
                let cue = cues.at(m.start());
                let (kind, score) = if matches!(cue, Some(Cue::Expiry | Cue::Card | Cue::Cvv))
                    || cues.mentions(Cue::Expiry)
                {
                    (EntityType::CreditDebitExpiry, 0.9)
                } else {
                    (EntityType::DateTime, 0.6)
                };
                push(m.start(), m.end(), kind, score);
            }
        }
    }

    /// The value after a cue that has no shape of its own: "my username is jdoe_42", or the answer
    /// to "What's your password?" in the next turn.
    fn find_cued_values(
        &self,
        text: &str,
        cues: CueContext<'_>,
        push: &mut impl FnMut(usize, usize, EntityType, f32),
    ) {
        let mut tried = |from: usize, cue: Cue, own: bool| {
            let Some(kind) = cued_kind(cue) else { return };
            let Some(caps) = self.value_after.captures(&text[from..]) else { return };
            let Some(m) = caps.get(2) else { return };
            let value = m.as_str().trim_end_matches(['.', ',', '?', '!', ';', '"', '”', '\'']);
            let start = from + m.start();
            // After the cue in the same turn, the value must be introduced ("is") or look like one.
            let introduced = caps.get(1).is_some() || value.bytes().any(|b| b.is_ascii_digit());
            // An answer in the next turn is introduced ("It's jdoe_42.") or is the whole turn.
            let whole_turn = text.trim().trim_end_matches(['.', '!']) == value;
            if value_fits(kind, value)
                && (if own {
                    introduced
                } else {
                    start < 40 && (caps.get(1).is_some() || whole_turn)
                })
            {
                push(start, start + value.len(), kind, if own { 0.85 } else { 0.75 });
            }
        };
        let mut own_cued = false;
        for &(end, cue) in cues.own {
            if cued_kind(cue).is_some() {
                own_cued = true;
                tried(end, cue, true);
            }
        }
        if !own_cued && let Some(&(_, cue)) = cues.before.last() {
            tried(0, cue, false);
        }
    }
}

fn cued_kind(cue: Cue) -> Option<EntityType> {
    match cue {
        Cue::Username => Some(EntityType::Username),
        Cue::Password => Some(EntityType::Password),
        Cue::Passport => Some(EntityType::PassportNumber),
        Cue::DriverId => Some(EntityType::DriverId),
        Cue::Plate => Some(EntityType::LicensePlate),
        _ => None,
    }
}

fn value_fits(kind: EntityType, value: &str) -> bool {
    let has_digit = value.bytes().any(|b| b.is_ascii_digit());
    let alnum = value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let stop = matches!(
        value.to_ascii_lowercase().as_str(),
        "the"
            | "a"
            | "my"
            | "your"
            | "it"
            | "that"
            | "not"
            | "no"
            | "yes"
            | "same"
            | "what"
            | "is"
            | "and"
            | "i"
            | "for"
            | "on"
            | "to"
            | "please"
            | "correct"
            | "right"
            | "sure"
    );
    if stop || value.is_empty() {
        return false;
    }
    match kind {
        EntityType::Username => value.len() >= 3,
        EntityType::Password => value.len() >= 4,
        EntityType::PassportNumber => alnum && has_digit && (6..=12).contains(&value.len()),
        EntityType::DriverId => alnum && has_digit && (5..=16).contains(&value.len()),
        EntityType::LicensePlate => alnum && has_digit && (2..=9).contains(&value.len()),
        _ => false,
    }
}

fn contains_word(text: &str, word: &str) -> bool {
    text.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| w.eq_ignore_ascii_case(word))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cues::CueFinder;

    fn found(text: &str, before: &str) -> Vec<(EntityType, String)> {
        let finder = CueFinder::new();
        let (own, before) = (finder.find(text), finder.find(before));
        let mut out = Vec::new();
        Patterns::new().find(text, CueContext { own: &own, before: &before }, &mut out);
        out.sort_by_key(|c| c.start);
        out.into_iter().map(|c| (c.kind, text[c.start..c.end].to_owned())).collect()
    }

    #[test]
    fn shaped_types() {
        let has = |text: &str, kind, span: &str| {
            let got = found(text, "");
            assert!(got.contains(&(kind, span.to_owned())), "{text}: {got:?}");
        };
        has("mail jane.doe@example.co.uk today", EntityType::Email, "jane.doe@example.co.uk");
        has(
            "it's john dot doe at gmail dot com.",
            EntityType::Email,
            "john dot doe at gmail dot com",
        );
        has("go to https://example.com/a?b=1.", EntityType::Url, "https://example.com/a?b=1");
        has("my IP is 192.168.10.254", EntityType::IpAddress, "192.168.10.254");
        has("v6 2001:db8::8a2e:370:7334 ok", EntityType::IpAddress, "2001:db8::8a2e:370:7334");
        has("mac 00:1A:2b:3C:4d:5E", EntityType::MacAddress, "00:1A:2b:3C:4d:5E");
        has("key AKIAIOSFODNN7EXAMPLE", EntityType::AwsAccessKey, "AKIAIOSFODNN7EXAMPLE");
        has(
            "secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY end",
            EntityType::AwsSecretKey,
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        );
        has(
            "IBAN GB82 WEST 1234 5698 7654 32 thanks",
            EntityType::InternationalBankAccountNumber,
            "GB82 WEST 1234 5698 7654 32",
        );
        has("the swift code is DEUTDEFF500", EntityType::SwiftCode, "DEUTDEFF500");
        has("VIN 1HGCM82633A004352", EntityType::VehicleIdentificationNumber, "1HGCM82633A004352");
        has("born on March 3rd, 1985 at home", EntityType::DateTime, "March 3rd, 1985");
        has(
            "born March third, nineteen eighty-five",
            EntityType::DateTime,
            "March third, nineteen eighty-five",
        );
        has("see you next Tuesday at 3:30 pm", EntityType::DateTime, "next Tuesday");
        has("see you next Tuesday at 3:30 pm", EntityType::DateTime, "3:30 pm");
        has("it was sent out yesterday", EntityType::DateTime, "yesterday");
        has("I'm 45 years old", EntityType::Age, "45");
        has("it expires 09/27", EntityType::CreditDebitExpiry, "09/27");
        has("my username is jdoe_42.", EntityType::Username, "jdoe_42");
        has("and my password is Tr0ub4dor&3", EntityType::Password, "Tr0ub4dor&3");
        has("passport number C03005988 please", EntityType::PassportNumber, "C03005988");
        assert_eq!(
            found("It's jdoe_42.", "What's your username?"),
            [(EntityType::Username, "jdoe_42".to_owned())]
        );
    }

    #[test]
    fn lookalikes_are_left_alone() {
        assert!(found("Hi, thank you for calling us today. Is that still correct?", "").is_empty());
        assert!(found("It's a great day, see you at the office. BUSINESS CENTER", "").is_empty());
        assert!(found("the version is 1.2.3 and costs 4.99", "").is_empty());
    }
}
