//! Person names: the census first- and last-name lists, capitalisation (transcripts capitalise
//! names and sentence starts), and the phrases that introduce or address a person ("my name is",
//! "Mr.", "Thank you, John."). A name found with strong evidence is remembered for the rest of the
//! call, so the later bare "John?" is redacted too.

use std::collections::{HashMap, HashSet};

use regex::Regex;

use crate::Candidate;

mod words;
use crate::address::is_street_suffix;
use crate::cues::{Cue, CueContext};
use crate::entity::EntityType;
use crate::text::{self, Word};
use words::{ADDRESSING, AMBIGUOUS, INTRODUCERS, ORGANISATION, SENTENCE_STARTERS, TITLES};

const FIRST_NAMES: &str = include_str!("../data/first_names.txt");
const LAST_NAMES: &str = include_str!("../data/last_names.txt");

/// What the census lists say of a word.
#[derive(Debug, Clone, Copy, Default)]
struct Known {
    /// Percent of people with it as a first name (0 when not one).
    first: f32,
    /// Percent of people with it as a surname.
    last: f32,
}

/// The name lists and the name patterns.
#[derive(Debug)]
pub(crate) struct Names {
    known: HashMap<String, Known>,
    spelled: Regex,
    spelled_spaced: Regex,
}

fn load(list: &str, mut add: impl FnMut(&str, f32)) {
    for line in list.lines().filter(|line| !line.starts_with('#')) {
        let mut fields = line.split('\t');
        if let (Some(name), Some(freq)) = (fields.next(), fields.next()) {
            add(name, freq.parse().unwrap_or(0.0));
        }
    }
}

fn lower(word: &str) -> String {
    word.to_lowercase().replace('’', "'")
}

impl Names {
    pub fn new() -> Self {
        let mut known: HashMap<String, Known> = HashMap::with_capacity(25_000);
        load(FIRST_NAMES, |name, freq| known.entry(name.to_owned()).or_default().first = freq);
        load(LAST_NAMES, |name, freq| known.entry(name.to_owned()).or_default().last = freq);
        Self {
            known,
            spelled: Regex::new(r"\b[A-Za-z](?:-[A-Za-z]){2,}\b").expect("compiles"),
            spelled_spaced: Regex::new(r"\b[A-Z](?:,? [A-Z]){2,}\b").expect("compiles"),
        }
    }

    /// Whether what the rules know rules out a name another recogniser proposes at
    /// `start..end`: it is one word that is also an everyday word (which needs support the
    /// proposer does not give), it holds an organisation or street word, or it is the start of
    /// an organisation's name ("Rivers Books", "calling Summit Broadband").
    pub fn rejects(&self, text: &str, words: &[Word], start: usize, end: usize) -> bool {
        let inside: Vec<usize> =
            (0..words.len()).filter(|&i| words[i].start >= start && words[i].end <= end).collect();
        let (Some(&first), Some(&last)) = (inside.first(), inside.last()) else { return false };
        let single = inside.len() == 1 && {
            let word = lower(words[first].text(text));
            AMBIGUOUS.contains(&word.as_str()) || SENTENCE_STARTERS.contains(&word.as_str())
        };
        single
            || inside.iter().any(|&i| is_organisation_or_street(words[i].text(text)))
            || organisation_follows(text, words, last + 1)
            || names_a_business(text, words, first)
    }

    /// Percent of people with `lower` (lower-cased) as a first name and as a surname.
    pub fn census(&self, lower: &str) -> (f32, f32) {
        self.known.get(lower).map_or((0.0, 0.0), |k| (k.first, k.last))
    }

    fn known(&self, word: &str) -> Known {
        self.known.get(&lower(word)).copied().unwrap_or_default()
    }

    /// Names in one turn.
    pub fn find(&self, text: &str, words: &[Word], cues: CueContext<'_>, out: &mut Vec<Candidate>) {
        let asked_for_name = cues.before.last().is_some_and(|(_, cue)| *cue == Cue::Name);
        let mut i = 0;
        while i < words.len() {
            let first = words[i].text(text);
            if !text::is_capitalized(first) || TITLES.contains(&lower(first).as_str()) {
                i += 1;
                continue;
            }
            let end = self.run_end(text, words, i);
            let organisation =
                organisation_follows(text, words, end) || names_a_business(text, words, i);
            if organisation || is_organisation_or_street(first) {
                i = end + 1;
                continue;
            }
            match self.judge(text, words, i, end, asked_for_name) {
                Some((last, score)) => {
                    out.push(Candidate {
                        start: words[i].start,
                        end: words[last].end,
                        kind: EntityType::Name,
                        score,
                    });
                    i = last + 1;
                }
                None => i += 1,
            }
        }
        let mut spelled =
            |start, end, score| out.push(Candidate { start, end, kind: EntityType::Name, score });
        if text.contains('-') {
            for m in self.spelled.find_iter(text) {
                let upper = m.as_str().bytes().any(|b| b.is_ascii_uppercase());
                if upper || cues.mentions(Cue::Name) {
                    spelled(m.start(), m.end(), 0.85);
                }
            }
        }
        if cues.mentions(Cue::Name) {
            for m in self.spelled_spaced.find_iter(text) {
                spelled(m.start(), m.end(), 0.8);
            }
        }
    }

    /// Where the run of capitalised words starting at `i` ends (exclusive), stopping before an
    /// organisation or street word.
    fn run_end(&self, text: &str, words: &[Word], i: usize) -> usize {
        let mut end = i + 1;
        while end < words.len() && end - i < 4 {
            let word = words[end].text(text);
            let initial = word.len() == 1 && word.bytes().all(|b| b.is_ascii_uppercase());
            if !(text::is_capitalized(word) || initial)
                || !joined(text, words[end - 1], words[end])
                || is_organisation_or_street(word)
            {
                break;
            }
            end += 1;
        }
        end
    }

    /// Whether `words[i..end]` is a name, with the index of its last word and a score.
    fn judge(
        &self,
        text: &str,
        words: &[Word],
        i: usize,
        end: usize,
        asked_for_name: bool,
    ) -> Option<(usize, f32)> {
        let first = words[i].text(text);
        let lowered = lower(first);
        let known = self.known(first);
        let ambiguous = AMBIGUOUS.contains(&lowered.as_str());
        // Only the phrases just before matter (the longest introducer is under 20 characters):
        // lowering the whole text before every capitalised word would be quadratic in a document.
        let before = lower(text::tail(text, words[i].start, 48));
        let titled = i > 0
            && TITLES.contains(&lower(words[i - 1].text(text)).as_str())
            && text[words[i - 1].end..words[i].start].trim_start_matches('.').trim().is_empty();
        let introduced = INTRODUCERS.iter().any(|phrase| before.ends_with(phrase));
        let loose_intro =
            introduced && ["i'm ", "i am ", "it's "].iter().any(|p| before.ends_with(p));
        let surname_next = end > i + 1 && {
            let next = self.known(words[i + 1].text(text));
            next.last > 0.0
                || (next.first == 0.0
                    && !AMBIGUOUS.contains(&lower(words[i + 1].text(text)).as_str()))
        };
        let last = end - 1;
        if titled || (introduced && !loose_intro) {
            return Some((last, 0.93));
        }
        let single_end = words[i].end;
        let after = text[single_end..].chars().next();
        let unknown = known.first == 0.0 && known.last == 0.0;
        // Where a name stands alone: before a comma or the end of a sentence, or first of a run.
        let alone = matches!(after, None | Some(',' | '.' | '?' | '!'));
        // A word no list knows is a name only alone, not as a contraction ("It's").
        let plausible = !unknown || (alone && !first.contains(['\'', '’']));
        if (loose_intro || asked_for_name)
            && (!ambiguous || (alone && !text::sentence_initial(text, words[i].start)))
            && first.len() > 2
            && plausible
        {
            return Some((last, if unknown { 0.8 } else { 0.88 }));
        }
        let initial = text::sentence_initial(text, words[i].start);
        if known.first > 0.0 && surname_next {
            return (!ambiguous || self.known(words[i + 1].text(text)).last > 0.0)
                .then_some((last, 0.9));
        }
        let addressed = alone
            && (i == 0
                || text[..words[i].start].trim_end().ends_with(',')
                || text::previous_word(text, words, i)
                    .is_some_and(|w| ADDRESSING.contains(&lower(w.text(text)).as_str())));
        if addressed && first.len() > 2 && !is_location_before(&before) && !(ambiguous && initial) {
            // Names the census lists lack ("Thanks, Priya.") are names here, less surely.
            if known.first > 0.0 {
                return Some((i, 0.86));
            }
            if unknown && plausible && !initial && !ambiguous {
                return Some((i, 0.75));
            }
        }
        if unknown {
            return None;
        }
        if initial || ambiguous || first.len() <= 2 || is_location_before(&before) {
            return None;
        }
        if known.first >= 0.002 {
            return Some((i, 0.8));
        }
        (known.last >= 0.001).then_some((i, 0.65))
    }

    /// Later mentions of names the call has already given: each capitalised word equal to one.
    pub fn remembered(
        &self,
        text: &str,
        words: &[Word],
        memory: &HashSet<String>,
        out: &mut Vec<Candidate>,
    ) {
        for (i, word) in words.iter().enumerate() {
            let s = word.text(text);
            if !text::is_capitalized(s) || !memory.contains(s) {
                continue;
            }
            let starter = SENTENCE_STARTERS.contains(&lower(s).as_str());
            let after = text[word.end..].chars().next();
            if starter && text::sentence_initial(text, word.start) && after != Some(',') {
                continue;
            }
            let organisation = words.get(i + 1).is_some_and(|w| {
                is_organisation_or_street(w.text(text)) && joined(text, *word, *w)
            });
            if !organisation {
                out.push(Candidate {
                    start: word.start,
                    end: word.end,
                    kind: EntityType::Name,
                    score: 0.85,
                });
            }
        }
    }
}

fn joined(text: &str, a: Word, b: Word) -> bool {
    let gap = &text[a.end..b.start];
    gap == " " || (gap == ". " && a.end - a.start == 1)
}

/// Whether organisation words follow the run ending before `end`, past "and" and "&" ("Cole and
/// Rivers Books", "Parker Outdoor Supply").
fn organisation_follows(text: &str, words: &[Word], end: usize) -> bool {
    let mut previous = words[end - 1].end;
    for word in words.iter().skip(end).take(4) {
        let gap = &text[previous..word.start];
        let s = word.text(text);
        if !(gap == " " || gap == " & ") {
            return false;
        }
        if is_organisation_or_street(s) {
            return true;
        }
        if !(text::is_capitalized(s) || s == "and" || s == "of") {
            return false;
        }
        previous = word.end;
    }
    false
}

/// Whether the words before `words[i]` introduce a business: "thank you for calling", "you've
/// reached", "a charge at".
fn names_a_business(text: &str, words: &[Word], i: usize) -> bool {
    text::previous_word(text, words, i).is_some_and(|w| {
        matches!(
            lower(w.text(text)).as_str(),
            "calling" | "reached" | "choosing" | "at" | "joining" | "shopping"
        ) || lower(text::tail(text, w.end, 10)) == "welcome to"
    })
}

fn is_organisation_or_street(word: &str) -> bool {
    let lowered = word.to_ascii_lowercase();
    ORGANISATION.contains(&lowered.as_str()) || is_street_suffix(word) || word == "&"
}

fn is_location_before(before: &str) -> bool {
    let last = before.trim_end().rsplit(' ').next().unwrap_or("");
    matches!(last, "in" | "from" | "to" | "near" | "visit" | "visiting" | "of" | "at" | "on")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cues::CueFinder;

    fn names(text: &str, before: &str) -> Vec<String> {
        let finder = CueFinder::new();
        let (own, before) = (finder.find(text), finder.find(before));
        let mut out = Vec::new();
        Names::new().find(
            text,
            &text::words(text),
            CueContext { own: &own, before: &before },
            &mut out,
        );
        out.sort_by_key(|c| c.start);
        out.into_iter().map(|c| text[c.start..c.end].to_owned()).collect::<Vec<_>>()
    }

    #[test]
    fn introduced_addressed_and_full_names() {
        assert_eq!(names("Hello, my name is John Stiles.", ""), ["John Stiles"]);
        assert_eq!(names("Hi John, how may I help you?", ""), ["John"]);
        assert_eq!(names("Thank you, John. Have a great day.", ""), ["John"]);
        assert_eq!(names("Please hold, Mrs. Grace Lee will be right with you.", ""), ["Grace Lee"]);
        assert_eq!(names("Thanks Will, I appreciate it.", ""), ["Will"]);
        assert_eq!(names("It's Grace.", "Can I have your first name?"), ["Grace"]);
        assert_eq!(
            names("That's S-T-I-L-E-S.", "How do you spell your last name?"),
            ["S-T-I-L-E-S"]
        );
        assert_eq!(names("I spoke to Maria Gonzalez yesterday about it.", ""), ["Maria Gonzalez"]);
    }

    #[test]
    fn words_organisations_and_streets_are_not_names() {
        assert!(
            names("Will you hold? I will check. May I ask why? See you in June.", "").is_empty(),
            "{:?}",
            names("Will you hold? I will check. May I ask why? See you in June.", "")
        );
        assert!(names("Sure, I can help you with that. Is that still correct?", "").is_empty());
        assert!(
            names("I bank with Wells Fargo and called Johnson Plumbing.", "").is_empty(),
            "{:?}",
            names("I bank with Wells Fargo and called Johnson Plumbing.", "")
        );
        assert!(names("It's on Jane Doe Street.", "").is_empty());
        assert!(names("Hi, thank you for calling us today. Whom do I have the pleasure of speaking with today?", "").is_empty());
    }
}
