//! Words, sentence positions and character offsets over a turn's text (all positions are bytes
//! until they leave the crate as code-point offsets).

/// A word: letters, with apostrophes or hyphens inside (`O'Brien`, `Mary-Jane`, `haven’t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word {
    pub start: usize,
    pub end: usize,
}

impl Word {
    pub fn text(self, text: &str) -> &str {
        &text[self.start..self.end]
    }
}

/// Splits `text` into words; digits, spaces and punctuation separate them.
pub(crate) fn words(text: &str) -> Vec<Word> {
    let mut words = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if !c.is_alphabetic() {
            continue;
        }
        let mut end = start + c.len_utf8();
        while let Some(&(i, c)) = chars.peek() {
            if c.is_alphabetic() {
                end = i + c.len_utf8();
                chars.next();
            } else if matches!(c, '\'' | '’' | '-')
                && text[i + c.len_utf8()..].chars().next().is_some_and(char::is_alphabetic)
            {
                chars.next();
            } else {
                break;
            }
        }
        words.push(Word { start, end });
    }
    words
}

/// `John`, `McDonald`, `O'Brien`: an upper-case first letter followed by at least one lower-case one.
pub(crate) fn is_capitalized(word: &str) -> bool {
    let mut chars = word.chars();
    chars.next().is_some_and(char::is_uppercase) && chars.any(char::is_lowercase)
}

/// Whether `start` begins a sentence: only spaces, quotes or brackets since the text's start or
/// since a `.`, `?` or `!`.
pub(crate) fn sentence_initial(text: &str, start: usize) -> bool {
    for c in text[..start].chars().rev() {
        match c {
            '.' | '?' | '!' | '…' => return true,
            c if c.is_whitespace() || matches!(c, '"' | '“' | '(' | '[' | '-' | '—') => {}
            _ => return false,
        }
    }
    true
}

/// The word just before byte `start`, skipping spaces only.
pub(crate) fn previous_word(text: &str, words: &[Word], index: usize) -> Option<Word> {
    let prev = *words.get(index.checked_sub(1)?)?;
    text[prev.end..words[index].start].trim().is_empty().then_some(prev)
}

/// At most the last `max` bytes of `text[..end]`, starting on a character boundary.
pub(crate) fn tail(text: &str, end: usize, max: usize) -> &str {
    let mut start = end.saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..end]
}

/// Converts byte offsets into code-point offsets, sweeping the text once for sorted offsets.
#[derive(Debug)]
pub(crate) struct CharOffsets<'a> {
    text: &'a str,
    ascii: bool,
    byte: usize,
    chars: usize,
}

impl<'a> CharOffsets<'a> {
    pub fn new(text: &'a str) -> Self {
        Self { text, ascii: text.is_ascii(), byte: 0, chars: 0 }
    }

    /// The code-point offset of byte `offset` (a char boundary). Cheapest when called in order.
    pub fn at(&mut self, offset: usize) -> usize {
        if self.ascii {
            return offset;
        }
        if offset < self.byte {
            self.byte = 0;
            self.chars = 0;
        }
        self.chars += self.text[self.byte..offset].chars().count();
        self.byte = offset;
        self.chars
    }
}

/// The byte offset of code-point offset `chars` in `text` (its length when past the end).
pub fn byte_offset(text: &str, chars: usize) -> usize {
    text.char_indices().nth(chars).map_or(text.len(), |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_inner_apostrophes_and_hyphens() {
        let text = "I haven’t met O'Brien or Mary-Jane - ok? W2 x-";
        let got: Vec<&str> = words(text).into_iter().map(|w| w.text(text)).collect();
        assert_eq!(got, ["I", "haven’t", "met", "O'Brien", "or", "Mary-Jane", "ok", "W", "x"]);
        assert!(is_capitalized("McDonald") && !is_capitalized("I") && !is_capitalized("SSN"));
        assert!(sentence_initial("Yes. Will you", 5) && !sentence_initial("Thanks Will", 7));
        let text = "it’s John";
        assert_eq!(tail(text, text.len(), 5), " John");
        assert_eq!(
            tail(text, text.len(), 7),
            "s John",
            "a cut inside ’ moves forward to a boundary"
        );
        assert_eq!(tail(text, 2, 40), "it");
    }

    #[test]
    fn char_offsets_count_code_points() {
        let text = "it’s John";
        let mut offsets = CharOffsets::new(text);
        let john = text.find("John").expect("present");
        assert_eq!(offsets.at(john), 5);
        assert_eq!(offsets.at(text.len()), 9);
        assert_eq!(offsets.at(0), 0);
        assert_eq!(byte_offset(text, 5), john);
    }
}
