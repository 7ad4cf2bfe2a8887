//! Redaction as Comprehend does it: each entity replaced by `[TYPE]` or masked character by
//! character, for the requested types at or above a score.

use serde::{Deserialize, Serialize};

use crate::entity::{Entity, EntityType};
use crate::text::byte_offset;

/// Comprehend's `MaskMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MaskMode {
    /// `John Stiles` → `[NAME]`.
    #[default]
    ReplaceWithPiiEntityType,
    /// `John Stiles` → `***********` (one mask character per character).
    Mask,
}

/// What to redact and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Redaction {
    pub types: Vec<EntityType>,
    pub mode: MaskMode,
    /// One of Comprehend's `!@#$%&*`.
    pub mask_character: char,
    pub min_score: f32,
}

impl Default for Redaction {
    fn default() -> Self {
        Self {
            types: EntityType::ALL.to_vec(),
            mode: MaskMode::default(),
            mask_character: '*',
            min_score: 0.5,
        }
    }
}

/// The mask characters Comprehend accepts.
pub const MASK_CHARACTERS: &str = "!@#$%&*";

/// Why a redaction setting is refused, as Comprehend refuses a `RedactionConfig`.
#[derive(Debug, thiserror::Error)]
pub enum InvalidRedaction {
    #[error(transparent)]
    Types(#[from] crate::UnknownEntityType),
    #[error("the entity types name no type")]
    NoTypes,
    #[error(
        "the mask character must be one of {MASK_CHARACTERS} (as Comprehend's MaskCharacter), not {0:?}"
    )]
    MaskCharacter(String),
    #[error("the minimum score must be between 0 and 1, not {0}")]
    MinScore(f32),
}

/// One replaced span: where it was (code points, in the original) and how long it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replaced {
    pub begin: usize,
    pub end: usize,
    pub new_len: usize,
}

impl Redaction {
    /// A redaction from settings as a user writes them: `types` comma-separated (or `ALL`), one
    /// mask character, a minimum score; each checked.
    pub fn new(
        types: &str,
        mode: MaskMode,
        mask_character: &str,
        min_score: f32,
    ) -> Result<Self, InvalidRedaction> {
        let types = EntityType::parse_list(types)?;
        if types.is_empty() {
            return Err(InvalidRedaction::NoTypes);
        }
        let mut chars = mask_character.chars();
        let mask_character = match (chars.next(), chars.next()) {
            (Some(c), None) if MASK_CHARACTERS.contains(c) => c,
            _ => return Err(InvalidRedaction::MaskCharacter(mask_character.to_owned())),
        };
        if !(0.0..=1.0).contains(&min_score) {
            return Err(InvalidRedaction::MinScore(min_score));
        }
        Ok(Self { types, mode, mask_character, min_score })
    }

    /// Whether this entity is redacted.
    pub fn selects(&self, entity: &Entity) -> bool {
        entity.score >= self.min_score && self.types.contains(&entity.kind)
    }

    /// `text` with the selected entities (sorted, not overlapping, as the detector returns them)
    /// redacted, and the spans replaced.
    pub fn apply(&self, text: &str, entities: &[Entity]) -> (String, Vec<Replaced>) {
        let mut out = String::with_capacity(text.len());
        let mut replaced = Vec::new();
        let mut at = 0;
        let mut at_chars = 0;
        for entity in entities.iter().filter(|e| self.selects(e)) {
            if entity.begin_offset < at_chars {
                continue;
            }
            let start = at + byte_offset(&text[at..], entity.begin_offset - at_chars);
            let end = start + byte_offset(&text[start..], entity.end_offset - entity.begin_offset);
            out.push_str(&text[at..start]);
            let new_len = match self.mode {
                MaskMode::ReplaceWithPiiEntityType => {
                    out.push('[');
                    out.push_str(entity.kind.as_str());
                    out.push(']');
                    entity.kind.as_str().len() + 2
                }
                MaskMode::Mask => {
                    let n = entity.end_offset - entity.begin_offset;
                    out.extend(std::iter::repeat_n(self.mask_character, n));
                    n
                }
            };
            replaced.push(Replaced { begin: entity.begin_offset, end: entity.end_offset, new_len });
            at = end;
            at_chars = entity.end_offset;
        }
        out.push_str(&text[at..]);
        (out, replaced)
    }
}

/// Where code-point offset `offset` of the original lands after `replaced`: offsets inside a
/// replaced span move to its start (for a begin) or its end (for an end).
pub fn map_offset(offset: usize, replaced: &[Replaced], is_end: bool) -> usize {
    let mut shift: isize = 0;
    for r in replaced {
        let new_begin = (r.begin as isize + shift) as usize;
        if offset <= r.begin {
            break;
        }
        if offset < r.end {
            return if is_end { new_begin + r.new_len } else { new_begin };
        }
        shift += r.new_len as isize - (r.end - r.begin) as isize;
    }
    (offset as isize + shift) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_as_comprehend_checks_them() {
        let ok = Redaction::new("NAME, ssn", MaskMode::Mask, "#", 0.7).expect("valid");
        assert_eq!(
            (ok.types, ok.mask_character, ok.min_score),
            (vec![EntityType::Name, EntityType::Ssn], '#', 0.7)
        );
        let refused =
            |types, mask, score| Redaction::new(types, MaskMode::Mask, mask, score).map(|_| ());
        assert!(matches!(refused("NAME,SOCIAL", "*", 0.5), Err(InvalidRedaction::Types(_))));
        assert!(matches!(refused(" , ", "*", 0.5), Err(InvalidRedaction::NoTypes)));
        assert!(matches!(refused("ALL", "x", 0.5), Err(InvalidRedaction::MaskCharacter(_))));
        assert!(matches!(refused("ALL", "**", 0.5), Err(InvalidRedaction::MaskCharacter(_))));
        assert!(matches!(refused("ALL", "*", 1.5), Err(InvalidRedaction::MinScore(_))));
    }

    fn entity(kind: EntityType, begin: usize, end: usize) -> Entity {
        Entity { score: 0.9, kind, begin_offset: begin, end_offset: end }
    }

    #[test]
    fn replaces_masks_and_maps_offsets() {
        let text = "I’m John, 555-456-7890.";
        let entities = [entity(EntityType::Name, 4, 8), entity(EntityType::Phone, 10, 22)];
        let (out, replaced) = Redaction::default().apply(text, &entities);
        assert_eq!(out, "I’m [NAME], [PHONE].");
        let masked =
            Redaction { mode: MaskMode::Mask, mask_character: '#', ..Redaction::default() };
        assert_eq!(masked.apply(text, &entities).0, "I’m ####, ############.");
        let only_names = Redaction { types: vec![EntityType::Name], ..Redaction::default() };
        assert_eq!(only_names.apply(text, &entities).0, "I’m [NAME], 555-456-7890.");
        // "John, 555" (4..13) becomes "[NAME], [PHONE]" (4..19): ends inside a span move to its end.
        assert_eq!(map_offset(4, &replaced, false), 4);
        assert_eq!(map_offset(13, &replaced, true), 19);
        assert_eq!(map_offset(23, &replaced, true), 20);
        assert_eq!(map_offset(6, &replaced, false), 4);
    }
}
