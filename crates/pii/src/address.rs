//! Postal addresses as said on a call: a street address (house number, possibly spoken, street,
//! suffix, unit, city, state, zip), a city with its state, or a PO box. A zip code alone is an
//! address only when it was asked for (see `numbers`).

use regex::Regex;

use crate::Candidate;
use crate::entity::EntityType;

const STATES: &str = "Alabama|Alaska|Arizona|Arkansas|California|Colorado|Connecticut|Delaware|Florida|Georgia|Hawaii|Idaho|Illinois|Indiana|Iowa|Kansas|Kentucky|Louisiana|Maine|Maryland|Massachusetts|Michigan|Minnesota|Mississippi|Missouri|Montana|Nebraska|Nevada|New Hampshire|New Jersey|New Mexico|New York|North Carolina|North Dakota|Ohio|Oklahoma|Oregon|Pennsylvania|Rhode Island|South Carolina|South Dakota|Tennessee|Texas|Utah|Vermont|Virginia|Washington|West Virginia|Wisconsin|Wyoming|District of Columbia";
const STATE_CODES: &str = "AL|AK|AZ|AR|CA|CO|CT|DE|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|DC";
/// Street suffixes, also what ends a run of capitalised words that is a street and not a person.
pub(crate) const SUFFIXES: &str = "Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Ter|Circle|Cir|Parkway|Pkwy|Highway|Hwy|Trail|Trl|Loop|Square|Sq|Alley|Crescent|Row|Path|Pike|Plaza";
/// Whether `word` is one of the street suffixes ("st", "Avenue"), in any case.
pub(crate) fn is_street_suffix(word: &str) -> bool {
    SUFFIXES.split('|').any(|suffix| suffix.eq_ignore_ascii_case(word))
}

const NUMBER_WORDS: &str = "zero|oh|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand";

/// The compiled address patterns.
#[derive(Debug)]
pub(crate) struct Addresses {
    street: Regex,
    city_state: Regex,
    po_box: Regex,
    named_street: Regex,
}

impl Addresses {
    pub fn new() -> Self {
        let number = format!(
            r"(?:\d{{1,6}}[A-Za-z]?|(?i:(?:{NUMBER_WORDS})(?:[- ](?:{NUMBER_WORDS})){{0,5}}))"
        );
        let place = format!(
            r"(?:,?\s+[A-Z][a-z]+(?:\s+[A-Z][a-z]+){{0,2}},?\s+(?:{STATES}|{STATE_CODES})\b)?"
        );
        let zip = r"(?:,?\s+\d{5}(?:-\d{4})?\b)?";
        let unit = r"(?:,?\s+(?:Apartment|Apt|Unit|Suite|Ste|Floor|Building|Bldg|#)\.?\s*#?[A-Za-z0-9-]+)?";
        let street = format!(
            r"\b{number}\s+(?:(?:North|South|East|West|N|S|E|W|NE|NW|SE|SW)\.?\s+)?(?:(?:[A-Z][a-z']+|\d{{1,3}}(?:st|nd|rd|th))\s+){{1,4}}(?:{SUFFIXES})\b\.?(?:\s+(?:NE|NW|SE|SW|North|South|East|West)\b)?{unit}{place}{zip}"
        );
        let re = |pattern: &str| Regex::new(pattern).expect("the address patterns compile");
        Self {
            street: re(&street),
            city_state: re(&format!(
                r"\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+){{0,2}}(?:,\s*(?:{STATES}|{STATE_CODES})\b(?:,?\s+\d{{5}}(?:-\d{{4}})?\b)?|\s+(?:{STATES}|{STATE_CODES})\s+\d{{5}}(?:-\d{{4}})?\b)"
            )),
            po_box: re(&format!(r"\b(?:P\.?\s?O\.?\s+Box|Post Office Box)\s+\d+{place}{zip}")),
            named_street: re(&format!(
                r"\b(?:on|off|at)\s+((?:[A-Z][a-z']+\s+){{1,3}}(?:{SUFFIXES})\b)"
            )),
        }
    }

    pub fn find(&self, text: &str, out: &mut Vec<Candidate>) {
        let mut push = |start, end, score| {
            out.push(Candidate { start, end, kind: EntityType::Address, score })
        };
        let has_upper = text.bytes().any(|b| b.is_ascii_uppercase());
        if !has_upper {
            return;
        }
        for m in self.street.find_iter(text) {
            push(m.start(), m.end(), 0.93);
        }
        for m in self.city_state.find_iter(text) {
            push(m.start(), m.end(), 0.86);
        }
        for m in self.po_box.find_iter(text) {
            push(m.start(), m.end(), 0.93);
        }
        for caps in self.named_street.captures_iter(text) {
            if let Some(m) = caps.get(1) {
                push(m.start(), m.end(), 0.8);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        Addresses::new().find(text, &mut out);
        crate::settle(out).into_iter().map(|c| text[c.start..c.end].to_owned()).collect()
    }

    #[test]
    fn full_partial_and_spoken_addresses() {
        assert_eq!(
            found("I live at 1234 Jane Doe Street, Apt 5B, Springfield, Illinois 62704 now."),
            ["1234 Jane Doe Street, Apt 5B, Springfield, Illinois 62704"]
        );
        assert_eq!(found("it's twelve thirty-four Elm Street"), ["twelve thirty-four Elm Street"]);
        assert_eq!(found("I moved to Seattle, Washington last year"), ["Seattle, Washington"]);
        assert_eq!(
            found("Send it to P.O. Box 4410, Austin, TX 78701"),
            ["P.O. Box 4410, Austin, TX 78701"]
        );
        assert_eq!(
            found("the shop on Martin Luther King Boulevard"),
            ["Martin Luther King Boulevard"]
        );
        assert!(found("Hi John Washington, how are you? I have 3 Dogs.").is_empty());
    }
}
