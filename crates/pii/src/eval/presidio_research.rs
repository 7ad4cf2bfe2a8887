//! presidio-research's labelled sentences (`synth_dataset_v2.json`: a JSON list of `full_text`
//! with `spans` in code points) read as one-turn calls, with its entity types mapped onto
//! Comprehend's. Types Comprehend has no counterpart for are dropped, so a NAME or ADDRESS
//! predicted over an organisation or a job title counts as a false alarm; place names (`GPE`)
//! are left unscored, since Comprehend's ADDRESS may or may not cover a lone city or country.

use serde::Deserialize;

use super::{Call, LabelledTurn, Negative, Span};
use crate::EntityType;

#[derive(Deserialize)]
struct Sample {
    full_text: String,
    spans: Vec<SampleSpan>,
}

#[derive(Deserialize)]
struct SampleSpan {
    entity_type: String,
    start_position: usize,
    end_position: usize,
}

/// Comprehend's type for a presidio-research type, where there is one.
fn comprehend_type(presidio: &str) -> Option<EntityType> {
    Some(match presidio {
        "PERSON" => EntityType::Name,
        "STREET_ADDRESS" | "ZIP_CODE" => EntityType::Address,
        "CREDIT_CARD" => EntityType::CreditDebitNumber,
        "PHONE_NUMBER" => EntityType::Phone,
        "EMAIL_ADDRESS" => EntityType::Email,
        "US_SSN" => EntityType::Ssn,
        "DATE_TIME" => EntityType::DateTime,
        "AGE" => EntityType::Age,
        "IP_ADDRESS" => EntityType::IpAddress,
        "DOMAIN_NAME" => EntityType::Url,
        "IBAN_CODE" => EntityType::InternationalBankAccountNumber,
        "US_DRIVER_LICENSE" => EntityType::DriverId,
        _ => return None,
    })
}

/// Reads the dataset; each sentence becomes a call of one customer turn.
pub fn read(text: &str) -> Result<Vec<Call>, serde_json::Error> {
    let samples: Vec<Sample> = serde_json::from_str(text)?;
    Ok(samples
        .into_iter()
        .enumerate()
        .map(|(i, sample)| {
            let mut turn = LabelledTurn {
                role: "CUSTOMER".to_owned(),
                text: sample.full_text,
                entities: Vec::new(),
                negatives: Vec::new(),
                unscored: Vec::new(),
            };
            for span in sample.spans {
                let (begin, end) = (span.start_position, span.end_position);
                match (comprehend_type(&span.entity_type), span.entity_type.as_str()) {
                    (Some(kind), _) => turn.entities.push(Span { kind, begin, end }),
                    (None, "GPE") => turn.unscored.push((begin, end)),
                    (None, "ORGANIZATION") => {
                        turn.negatives.push(Negative { kind: "COMPANY".to_owned(), begin, end });
                    }
                    (None, _) => {}
                }
            }
            Call { id: format!("presidio-research-{i}"), turns: vec![turn] }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_types_and_keeps_code_point_offsets() {
        let calls = read(
            r#"[{"full_text": "Jožef lives in Tartu at 5 Main St.", "masked": "", "template_id": 1, "metadata": null,
                 "spans": [{"entity_type": "PERSON", "entity_value": "Jožef", "start_position": 0, "end_position": 5},
                           {"entity_type": "GPE", "entity_value": "Tartu", "start_position": 15, "end_position": 20},
                           {"entity_type": "STREET_ADDRESS", "entity_value": "5 Main St.", "start_position": 24, "end_position": 34},
                           {"entity_type": "TITLE", "entity_value": "x", "start_position": 0, "end_position": 1}]}]"#,
        )
        .expect("reads");
        let turn = &calls[0].turns[0];
        let kinds: Vec<_> = turn.entities.iter().map(|s| (s.kind, s.begin, s.end)).collect();
        assert_eq!(kinds, [(EntityType::Name, 0, 5), (EntityType::Address, 24, 34)]);
        assert_eq!(turn.unscored, [(15, 20)]);
    }
}
