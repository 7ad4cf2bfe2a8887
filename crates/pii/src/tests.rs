//! The detector on whole calls: the blog's acceptance example and the cases that make call
//! transcripts hard.

use serde_json::Value;

use crate::{Detector, EntityType, Redaction, contact_lens};

const BLOG_CALL: &str = include_str!("../tests/data/blog-call.json");

fn turns_of(transcript: &Value) -> Vec<String> {
    transcript["Transcript"]
        .as_array()
        .expect("turns")
        .iter()
        .map(|t| t["Content"].as_str().expect("content").to_owned())
        .collect()
}

fn redact_with(detector: &Detector, turns: &[&str], types: &[EntityType]) -> Vec<String> {
    let redaction = Redaction { types: types.to_vec(), ..Redaction::default() };
    detector
        .detect_conversation(turns)
        .iter()
        .zip(turns)
        .map(|(found, text)| redaction.apply(text, found).0)
        .collect()
}

/// What each turn of `turns` yields, as (type, text) pairs.
fn spans(detector: &Detector, turns: &[&str]) -> Vec<Vec<(EntityType, String)>> {
    detector
        .detect_conversation(turns)
        .iter()
        .zip(turns)
        .map(|(found, text)| {
            found
                .iter()
                .map(|e| {
                    (
                        e.kind,
                        text.chars()
                            .skip(e.begin_offset)
                            .take(e.end_offset - e.begin_offset)
                            .collect(),
                    )
                })
                .collect()
        })
        .collect()
}

#[test]
fn the_blog_call_is_redacted_exactly_as_the_blog_shows() {
    let detector = Detector::new();
    let transcript: Value = serde_json::from_str(BLOG_CALL).expect("fixture");
    let turns = turns_of(&transcript);
    let turns: Vec<&str> = turns.iter().map(String::as_str).collect();
    let redacted =
        redact_with(&detector, &turns, &[EntityType::Name, EntityType::Ssn, EntityType::Phone]);
    let expected: Vec<String> = turns
        .iter()
        .map(|t| {
            t.replace("John Stiles", "[NAME]")
                .replace("John", "[NAME]")
                .replace("1111", "[SSN]")
                .replace("555-456-7890", "[PHONE]")
        })
        .collect();
    assert_eq!(redacted, expected);
}

#[test]
fn a_contact_lens_file_keeps_its_shape_and_moves_quoted_offsets() {
    let detector = Detector::new();
    let original: Value = serde_json::from_str(BLOG_CALL).expect("fixture");
    let mut transcript = original.clone();
    let redaction = Redaction {
        types: vec![EntityType::Name, EntityType::Ssn, EntityType::Phone],
        ..Redaction::default()
    };
    contact_lens::redact(&detector, &mut transcript, &redaction).expect("redacts");

    let turns = transcript["Transcript"].as_array().expect("turns");
    assert_eq!(turns[1]["Content"], "Hello, my name is [NAME].");
    let outcome = &turns[8]["OutcomesDetected"][0];
    assert_eq!(outcome["Text"], "The number we have on file for you is [PHONE]");
    let content: Vec<char> = turns[8]["Content"].as_str().expect("content").chars().collect();
    let (b, e) = (
        outcome["CharacterOffsets"]["BeginOffsetChar"].as_u64().expect("b") as usize,
        outcome["CharacterOffsets"]["EndOffsetChar"].as_u64().expect("e") as usize,
    );
    assert_eq!(content[b..e].iter().collect::<String>(), outcome["Text"].as_str().expect("text"));
    assert_eq!(
        turns[3]["IssuesDetected"], original["Transcript"][3]["IssuesDetected"],
        "nothing to redact there: unchanged"
    );
    assert_eq!(transcript["ContentMetadata"]["Output"], "Redacted");
    assert_eq!(
        transcript["ContentMetadata"]["RedactionTypesMetadata"]["PII"]["RedactionEntitiesRequested"],
        serde_json::json!(["NAME", "SSN", "PHONE"])
    );

    // Every other field, on every turn and at the top, is as it was.
    for (new, old) in turns.iter().zip(original["Transcript"].as_array().expect("turns")) {
        for (key, value) in old.as_object().expect("turn") {
            if !matches!(key.as_str(), "Content" | "OutcomesDetected" | "ActionItemsDetected") {
                assert_eq!(&new[key], value, "{key}");
            }
        }
    }
    for key in [
        "Version",
        "AccountId",
        "Channel",
        "Participants",
        "Categories",
        "ConversationCharacteristics",
        "JobStatus",
        "LanguageCode",
    ] {
        assert_eq!(transcript[key], original[key], "{key}");
    }
    // Fields keep their order, at the top and in every turn, so the redacted file diffs cleanly
    // against the original (a new ContentMetadata key goes last).
    let keys = |v: &Value| v.as_object().expect("object").keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&transcript), keys(&original));
    assert_ne!(
        keys(&original),
        {
            let mut sorted = keys(&original);
            sorted.sort();
            sorted
        },
        "the fixture's keys are not sorted"
    );
    for (new, old) in turns.iter().zip(original["Transcript"].as_array().expect("turns")) {
        assert_eq!(keys(new), keys(old));
    }
}

#[test]
fn missing_transcripts_and_contents_are_named_errors() {
    let detector = Detector::new();
    let mut no_transcript = serde_json::json!({ "Version": "1.1.0" });
    let err = contact_lens::redact(&detector, &mut no_transcript, &Redaction::default())
        .expect_err("refused");
    assert!(err.to_string().contains("no `Transcript`"), "{err}");
    let mut no_content =
        serde_json::json!({ "Transcript": [{ "Id": "a", "Content": "hi" }, { "Id": "b" }] });
    let err = contact_lens::redact(&detector, &mut no_content, &Redaction::default())
        .expect_err("refused");
    assert!(err.to_string().contains("turn 1"), "{err}");
}

#[test]
fn last_four_answers_take_their_type_from_the_question() {
    let d = Detector::new();
    let got = spans(
        &d,
        &[
            "And the last four of the card on the account?",
            "It's 4242.",
            "And your PIN?",
            "It's 9876.",
            "What's the last four of your checking account?",
            "Sure, 3344.",
        ],
    );
    assert_eq!(got[1], [(EntityType::CreditDebitNumber, "4242".to_owned())]);
    assert_eq!(got[3], [(EntityType::Pin, "9876".to_owned())]);
    assert_eq!(got[5], [(EntityType::BankAccountNumber, "3344".to_owned())]);
}

#[test]
fn numbers_split_over_turns_and_spoken_forms() {
    let d = Detector::new();
    let got = spans(
        &d,
        &["Can I get the card number?", "Sure, it's 4111 1111", "Okay, go on.", "1111 1111."],
    );
    assert_eq!(got[1], [(EntityType::CreditDebitNumber, "4111 1111".to_owned())]);
    assert_eq!(got[3], [(EntityType::CreditDebitNumber, "1111 1111".to_owned())]);
    let got = spans(
        &d,
        &[
            "What's the best number to reach you?",
            "It's five five five, four five six, seven eight nine zero. And email me at john dot doe at gmail dot com.",
        ],
    );
    assert_eq!(
        got[1],
        [
            (EntityType::Phone, "five five five, four five six, seven eight nine zero".to_owned()),
            (EntityType::Email, "john dot doe at gmail dot com".to_owned())
        ]
    );
}

#[test]
fn names_remembered_and_look_alikes_left() {
    let d = Detector::new();
    let got = spans(
        &d,
        &[
            "Thanks for calling Johnson Plumbing, this is Grace Kim.",
            "Hi Grace. Will Turner here, I will hold if needed.",
            "Thank you, Will. May I have your order number?",
            "It's 555-123-4567.",
            "I see it. Grace will follow up in May.",
        ],
    );
    assert_eq!(got[0], [(EntityType::Name, "Grace Kim".to_owned())]);
    assert_eq!(
        got[1],
        [(EntityType::Name, "Grace".to_owned()), (EntityType::Name, "Will Turner".to_owned())]
    );
    assert_eq!(got[2], [(EntityType::Name, "Will".to_owned())]);
    assert!(got[3].is_empty(), "an order number shaped like a phone: {:?}", got[3]);
    assert_eq!(
        got[4],
        [(EntityType::Name, "Grace".to_owned()), (EntityType::DateTime, "May".to_owned())]
    );
}

#[test]
fn the_learned_tagger_finds_names_and_addresses_the_rules_miss() {
    let found = |detector: &Detector, text: &str| -> Vec<(EntityType, String)> {
        detector
            .detect(text)
            .iter()
            .map(|e| {
                (
                    e.kind,
                    text.chars().skip(e.begin_offset).take(e.end_offset - e.begin_offset).collect(),
                )
            })
            .collect()
    };
    let text = "Eszter Várkonyi will be picking it up from 18 Kalevankatu 44, Turku.";
    let rules = found(&Detector::rules_only(), text);
    let learned = found(&Detector::new(), text);
    assert_eq!(rules, [(EntityType::Name, "Turku".to_owned())]);
    assert!(!learned.contains(&(EntityType::Name, "Turku".to_owned())), "{learned:?}");
    assert!(learned.contains(&(EntityType::Name, "Eszter Várkonyi".to_owned())), "{learned:?}");
    assert!(
        learned.iter().any(|(k, s)| *k == EntityType::Address && s.contains("Kalevankatu 44")),
        "{learned:?}"
    );
    // What it must leave: greetings, amounts and businesses named after people.
    let text =
        "Absolutely. How can I help? You were charged $82.50 by Mendoza Plumbing on Tuesday.";
    let learned = found(&Detector::new(), text);
    assert!(
        !learned.iter().any(|(k, _)| matches!(k, EntityType::Name | EntityType::Address)),
        "{learned:?}"
    );
}
