//! Amazon Comprehend's PII entity types and the spans the detector reports.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The PII entity types, named and spelled as Amazon Comprehend's `PiiEntityType` (the universal
/// types and the US ones), so that requests and results move between the two unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EntityType {
    Address,
    Age,
    AwsAccessKey,
    AwsSecretKey,
    CreditDebitCvv,
    CreditDebitExpiry,
    CreditDebitNumber,
    DateTime,
    DriverId,
    Email,
    InternationalBankAccountNumber,
    IpAddress,
    LicensePlate,
    MacAddress,
    Name,
    Password,
    Phone,
    Pin,
    SwiftCode,
    Url,
    Username,
    VehicleIdentificationNumber,
    Ssn,
    BankAccountNumber,
    BankRouting,
    PassportNumber,
    UsIndividualTaxIdentificationNumber,
}

impl EntityType {
    /// Every type, in Comprehend's documented order (what `ALL` stands for).
    pub const ALL: [Self; 27] = [
        Self::Address,
        Self::Age,
        Self::AwsAccessKey,
        Self::AwsSecretKey,
        Self::CreditDebitCvv,
        Self::CreditDebitExpiry,
        Self::CreditDebitNumber,
        Self::DateTime,
        Self::DriverId,
        Self::Email,
        Self::InternationalBankAccountNumber,
        Self::IpAddress,
        Self::LicensePlate,
        Self::MacAddress,
        Self::Name,
        Self::Password,
        Self::Phone,
        Self::Pin,
        Self::SwiftCode,
        Self::Url,
        Self::Username,
        Self::VehicleIdentificationNumber,
        Self::Ssn,
        Self::BankAccountNumber,
        Self::BankRouting,
        Self::PassportNumber,
        Self::UsIndividualTaxIdentificationNumber,
    ];

    /// Comprehend's name for the type (`CREDIT_DEBIT_NUMBER`), also what `[TYPE]` replacement writes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Address => "ADDRESS",
            Self::Age => "AGE",
            Self::AwsAccessKey => "AWS_ACCESS_KEY",
            Self::AwsSecretKey => "AWS_SECRET_KEY",
            Self::CreditDebitCvv => "CREDIT_DEBIT_CVV",
            Self::CreditDebitExpiry => "CREDIT_DEBIT_EXPIRY",
            Self::CreditDebitNumber => "CREDIT_DEBIT_NUMBER",
            Self::DateTime => "DATE_TIME",
            Self::DriverId => "DRIVER_ID",
            Self::Email => "EMAIL",
            Self::InternationalBankAccountNumber => "INTERNATIONAL_BANK_ACCOUNT_NUMBER",
            Self::IpAddress => "IP_ADDRESS",
            Self::LicensePlate => "LICENSE_PLATE",
            Self::MacAddress => "MAC_ADDRESS",
            Self::Name => "NAME",
            Self::Password => "PASSWORD",
            Self::Phone => "PHONE",
            Self::Pin => "PIN",
            Self::SwiftCode => "SWIFT_CODE",
            Self::Url => "URL",
            Self::Username => "USERNAME",
            Self::VehicleIdentificationNumber => "VEHICLE_IDENTIFICATION_NUMBER",
            Self::Ssn => "SSN",
            Self::BankAccountNumber => "BANK_ACCOUNT_NUMBER",
            Self::BankRouting => "BANK_ROUTING",
            Self::PassportNumber => "PASSPORT_NUMBER",
            Self::UsIndividualTaxIdentificationNumber => "US_INDIVIDUAL_TAX_IDENTIFICATION_NUMBER",
        }
    }

    /// Parses a comma-separated list as Comprehend's `PiiEntityTypes` takes it; `ALL` is every type.
    pub fn parse_list(list: &str) -> Result<Vec<Self>, UnknownEntityType> {
        let mut types = Vec::new();
        for name in list.split(',').map(str::trim).filter(|name| !name.is_empty()) {
            if name.eq_ignore_ascii_case("ALL") {
                return Ok(Self::ALL.to_vec());
            }
            let kind = name.parse()?;
            if !types.contains(&kind) {
                types.push(kind);
            }
        }
        Ok(types)
    }
}

impl fmt::Display for EntityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of Comprehend's entity types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown PII entity type {0:?} (expected one of Comprehend's types, such as NAME, SSN, PHONE, or ALL)"
)]
pub struct UnknownEntityType(pub String);

impl FromStr for EntityType {
    type Err = UnknownEntityType;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownEntityType(name.to_owned()))
    }
}

/// One PII span, as Comprehend reports it: character offsets (Unicode code points, end exclusive)
/// into the text that was searched, and a confidence in 0..=1.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Entity {
    pub score: f32,
    #[serde(rename = "Type")]
    pub kind: EntityType,
    pub begin_offset: usize,
    pub end_offset: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_as_comprehend_spells_them() {
        for kind in EntityType::ALL {
            let json = serde_json::to_string(&kind).expect("serialises");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(kind.as_str().parse::<EntityType>(), Ok(kind));
        }
        assert_eq!(
            EntityType::parse_list("name, SSN,PHONE,NAME"),
            Ok(vec![EntityType::Name, EntityType::Ssn, EntityType::Phone])
        );
        assert_eq!(EntityType::parse_list("ALL").map(|all| all.len()), Ok(27));
        assert!(EntityType::parse_list("NAME,SOCIAL").is_err());
    }
}
