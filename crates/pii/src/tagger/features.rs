//! What the tagger sees of each word: its form, shape, affixes, census frequencies and street
//! vocabulary, and the same of its neighbours. Training and tagging share this code, so a model
//! always meets the features it learned.

use crfs::Attribute;

use crate::address::is_street_suffix;
use crate::names::Names;

/// A word, a number or one punctuation mark (a line break counts: addresses span lines), in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub start: usize,
    pub end: usize,
}

/// Splits `text` into tokens: runs of letters and digits (hyphens and apostrophes inside a run
/// kept, a possessive "'s" split off), and each other non-space character alone.
pub fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c.is_alphanumeric() {
            let mut end = start + c.len_utf8();
            while let Some(&(i, next)) = chars.peek() {
                let joins = matches!(next, '-' | '\'' | '’')
                    && text[i + next.len_utf8()..]
                        .chars()
                        .next()
                        .is_some_and(char::is_alphanumeric)
                    && !possessive(&text[i..]);
                if next.is_alphanumeric() || joins {
                    end = i + next.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(Token { start, end });
        } else if c == '\n' || !c.is_whitespace() {
            let end = if possessive(&text[start..]) {
                start + c.len_utf8() + 1
            } else {
                start + c.len_utf8()
            };
            while chars.peek().is_some_and(|&(i, _)| i < end) {
                chars.next();
            }
            out.push(Token { start, end });
        }
    }
    out
}

/// Whether `rest` starts with a possessive "'s" ending a word.
fn possessive(rest: &str) -> bool {
    let mut chars = rest.chars();
    matches!(chars.next(), Some('\'' | '’'))
        && matches!(chars.next(), Some('s' | 'S'))
        && !chars.next().is_some_and(char::is_alphanumeric)
}

/// "Xxxx" → "Xx", "McDonald" → "XxXx", "12-B" → "d-X": character classes with repeats folded.
fn shape(word: &str) -> String {
    let mut out = String::with_capacity(6);
    let mut last = ' ';
    for c in word.chars() {
        let class = if c.is_uppercase() {
            'X'
        } else if c.is_lowercase() {
            'x'
        } else if c.is_numeric() {
            'd'
        } else {
            c
        };
        if class != last {
            out.push(class);
            last = class;
        }
        if out.len() >= 6 {
            break;
        }
    }
    out
}

/// A census frequency (percent of people) as a coarse bucket.
fn bucket(freq: f32) -> &'static str {
    match freq {
        f if f <= 0.0 => "0",
        f if f < 0.005 => "1",
        f if f < 0.05 => "2",
        _ => "3",
    }
}

/// What is computed once per token and read by its own and its neighbours' features.
struct Seen {
    lower: String,
    shape: String,
    first: &'static str,
    last: &'static str,
    street: bool,
}

impl Seen {
    fn new(names: &Names, word: &str) -> Self {
        let lower = word.to_lowercase();
        let (first, last) = names.census(&lower);
        Self {
            shape: shape(word),
            first: bucket(first),
            last: bucket(last),
            street: is_street_suffix(word),
            lower,
        }
    }

    /// The word's features as seen from `at` (its position relative to the tagged word).
    fn describe(&self, at: &str, out: &mut Vec<Attribute>) {
        out.push(Attribute::new(format!("{at}w={}", self.lower), 1.0));
        out.push(Attribute::new(format!("{at}sh={}", self.shape), 1.0));
        out.push(Attribute::new(format!("{at}fn={}", self.first), 1.0));
        out.push(Attribute::new(format!("{at}ln={}", self.last), 1.0));
        if self.street {
            out.push(Attribute::new(format!("{at}street"), 1.0));
        }
    }
}

/// The attributes of every token, in order.
pub(crate) fn attributes(names: &Names, text: &str, tokens: &[Token]) -> Vec<Vec<Attribute>> {
    const AROUND: [(isize, &str); 4] = [(-2, "-2:"), (-1, "-1:"), (1, "+1:"), (2, "+2:")];
    let seen: Vec<Seen> = tokens.iter().map(|t| Seen::new(names, &text[t.start..t.end])).collect();
    tokens
        .iter()
        .enumerate()
        .map(|(i, &token)| {
            let mut attrs = Vec::with_capacity(32);
            attrs.push(Attribute::new("bias", 1.0));
            let own = &seen[i];
            own.describe("", &mut attrs);
            // The first two and last three characters, sliced where they fall in the word.
            let lower = own.lower.as_str();
            let n = lower.chars().count();
            let p2 = lower.char_indices().nth(2).map_or(lower.len(), |(i, _)| i);
            let s3 = lower.char_indices().rev().nth(2).map_or(0, |(i, _)| i);
            attrs.push(Attribute::new(format!("p2={}", &lower[..p2]), 1.0));
            attrs.push(Attribute::new(format!("s3={}", &lower[s3..]), 1.0));
            attrs.push(Attribute::new(format!("len={}", n.min(9)), 1.0));
            if text[token.start..token.end].chars().any(|c| c.is_alphabetic() && !c.is_ascii()) {
                attrs.push(Attribute::new("accented", 1.0));
            }
            for (offset, at) in AROUND {
                match i.checked_add_signed(offset).and_then(|j| seen.get(j)) {
                    Some(other) => other.describe(at, &mut attrs),
                    None => attrs.push(Attribute::new(format!("{at}edge"), 1.0)),
                }
            }
            let starts_sentence = i == 0
                || matches!(
                    &text[tokens[i - 1].start..tokens[i - 1].end],
                    "." | "?" | "!" | "\n" | ":"
                );
            if starts_sentence {
                attrs.push(Attribute::new("sentence-start", 1.0));
            }
            attrs
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<&str> {
        tokens(text).iter().map(|t| &text[t.start..t.end]).collect()
    }

    #[test]
    fn splits_words_numbers_and_marks() {
        assert_eq!(
            words("Hi, I'm Anne-Marie O'Neil's\nsister: 12-B Rue d’Alsace."),
            [
                "Hi",
                ",",
                "I'm",
                "Anne-Marie",
                "O'Neil",
                "'s",
                "\n",
                "sister",
                ":",
                "12-B",
                "Rue",
                "d’Alsace",
                "."
            ]
        );
        assert_eq!(words("Szöllösy’s"), ["Szöllösy", "’s"]);
        assert!(tokens("  ").is_empty());
    }

    #[test]
    fn shapes_fold_repeats() {
        assert_eq!(shape("McDonald"), "XxXx");
        assert_eq!(shape("12-B"), "d-X");
        assert_eq!(shape("Ödön"), "Xx");
    }
}
