//! Checksums and issuing rules of identifiers: what tells a card number from sixteen random digits.

/// Luhn (mod 10) check of a card number's digits.
pub fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// ABA routing number checksum (3-7-1 weights over nine digits).
pub fn aba_routing(digits: &[u8]) -> bool {
    if digits.len() != 9 {
        return false;
    }
    let weights = [3, 7, 1, 3, 7, 1, 3, 7, 1];
    let sum: u32 = digits.iter().zip(weights).map(|(&d, w)| u32::from(d - b'0') * w).sum();
    sum.is_multiple_of(10) && sum > 0
}

/// The SSA's issuing rules: area not 000, 666 or 9xx; group not 00; serial not 0000.
pub fn ssn(digits: &[u8]) -> bool {
    if digits.len() != 9 {
        return false;
    }
    let area = &digits[..3];
    area != b"000"
        && area != b"666"
        && area[0] != b'9'
        && &digits[3..5] != b"00"
        && &digits[5..] != b"0000"
}

/// An ITIN: nine digits starting with 9, the middle pair in the IRS's ranges (50–65, 70–88, 90–92, 94–99).
pub fn itin(digits: &[u8]) -> bool {
    if digits.len() != 9 || digits[0] != b'9' {
        return false;
    }
    let group = u32::from(digits[3] - b'0') * 10 + u32::from(digits[4] - b'0');
    matches!(group, 50..=65 | 70..=88 | 90..=92 | 94..=99)
}

/// IBAN mod-97 check (ISO 13616) of an IBAN without spaces.
pub fn iban(iban: &str) -> bool {
    let bytes = iban.as_bytes();
    if !(15..=34).contains(&bytes.len()) || !bytes[..2].iter().all(u8::is_ascii_uppercase) {
        return false;
    }
    let mut rem = 0u32;
    for &c in bytes[4..].iter().chain(&bytes[..4]) {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem == 1
}

/// The North American VIN check digit (position 9) of a 17-character VIN.
pub fn vin(vin: &str) -> bool {
    const WEIGHTS: [u32; 17] = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];
    let bytes = vin.as_bytes();
    if bytes.len() != 17 {
        return false;
    }
    let mut sum = 0;
    for (&c, w) in bytes.iter().zip(WEIGHTS) {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'H' => u32::from(c - b'A') + 1,
            b'J'..=b'N' => u32::from(c - b'J') + 1,
            b'P' => 7,
            b'R'..=b'Z' => u32::from(c - b'R') + 9,
            _ => return false,
        };
        sum += v * w;
    }
    let check = match sum % 11 {
        10 => b'X',
        d => b'0' + d as u8,
    };
    bytes[8] == check
}

/// A North American (NANP) number: area code and exchange both start with 2–9.
pub fn nanp(ten: &[u8]) -> bool {
    ten.len() == 10 && ten[0] >= b'2' && ten[3] >= b'2'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_accept_real_shapes_and_refuse_one_digit_off() {
        assert!(luhn(b"4111111111111111"));
        assert!(!luhn(b"4111111111111112"));
        assert!(luhn(b"378282246310005"));
        assert!(aba_routing(b"021000021"));
        assert!(!aba_routing(b"021000022"));
        assert!(ssn(b"123456789"));
        assert!(
            !ssn(b"666456789") && !ssn(b"900456789") && !ssn(b"123006789") && !ssn(b"123450000")
        );
        assert!(itin(b"912701234") && !itin(b"912401234"));
        assert!(iban("GB82WEST12345698765432"));
        assert!(!iban("GB82WEST12345698765433"));
        assert!(iban("DE89370400440532013000"));
        assert!(vin("1HGCM82633A004352"));
        assert!(!vin("1HGCM82643A004352"));
        assert!(nanp(b"5554567890") && !nanp(b"1554567890"));
    }
}
