//! Checksums and validators used on candidates. All take ASCII and never panic.

/// Luhn (mod 10) check over the ASCII digits of `s`; other bytes are ignored.
pub fn luhn(s: &[u8]) -> bool {
    let mut sum = 0u32;
    let mut double = false;
    let mut n = 0;
    for &c in s.iter().rev() {
        if !c.is_ascii_digit() {
            continue;
        }
        let mut d = (c - b'0') as u32;
        if double {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        double = !double;
        n += 1;
    }
    n > 0 && sum % 10 == 0
}

/// Known issuer prefixes (IIN ranges) and the lengths they issue; `digits` are ASCII digits only.
pub fn card_issuer_ok(digits: &[u8]) -> bool {
    let n = digits.len();
    if !(13..=19).contains(&n) || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let p = |k: usize| -> u32 {
        digits[..k]
            .iter()
            .fold(0u32, |a, &c| a * 10 + (c - b'0') as u32)
    };
    match digits[0] {
        // Visa
        b'4' => matches!(n, 13 | 16 | 19),
        // Mastercard 51-55; Maestro 50, 56-59
        b'5' => ((51..=55).contains(&p(2)) && n == 16) || (p(2) == 50 || p(2) >= 56) && n >= 16,
        // Mastercard 2-series
        b'2' => (2221..=2720).contains(&p(4)) && n == 16,
        b'3' => {
            let p2 = p(2);
            ((p2 == 34 || p2 == 37) && n == 15) // Amex
                || ((300..=305).contains(&p(3)) || p2 == 36 || p2 == 38 || p2 == 39) && n >= 14 // Diners
                || (3528..=3589).contains(&p(4)) && n >= 16 // JCB
        }
        // Discover, UnionPay, Maestro, RuPay all live under 6 with 16-19 digits
        b'6' => n >= 16,
        _ => false,
    }
}

/// IBAN length per country (ISO 13616 registry).
pub fn iban_length(cc: &[u8]) -> Option<usize> {
    let l = match cc {
        b"AD" => 24,
        b"AE" => 23,
        b"AL" => 28,
        b"AT" => 20,
        b"AZ" => 28,
        b"BA" => 20,
        b"BE" => 16,
        b"BG" => 22,
        b"BH" => 22,
        b"BI" => 27,
        b"BR" => 29,
        b"BY" => 28,
        b"CH" => 21,
        b"CR" => 22,
        b"CY" => 28,
        b"CZ" => 24,
        b"DE" => 22,
        b"DJ" => 27,
        b"DK" => 18,
        b"DO" => 28,
        b"EE" => 20,
        b"EG" => 29,
        b"ES" => 24,
        b"FI" => 18,
        b"FK" => 18,
        b"FO" => 18,
        b"FR" => 27,
        b"GB" => 22,
        b"GE" => 22,
        b"GI" => 23,
        b"GL" => 18,
        b"GR" => 27,
        b"GT" => 28,
        b"HR" => 21,
        b"HU" => 28,
        b"IE" => 22,
        b"IL" => 23,
        b"IQ" => 23,
        b"IS" => 26,
        b"IT" => 27,
        b"JO" => 30,
        b"KW" => 30,
        b"KZ" => 20,
        b"LB" => 28,
        b"LC" => 32,
        b"LI" => 21,
        b"LT" => 20,
        b"LU" => 20,
        b"LV" => 21,
        b"LY" => 25,
        b"MC" => 27,
        b"MD" => 24,
        b"ME" => 22,
        b"MK" => 19,
        b"MN" => 20,
        b"MR" => 27,
        b"MT" => 31,
        b"MU" => 30,
        b"NI" => 28,
        b"NL" => 18,
        b"NO" => 15,
        b"OM" => 23,
        b"PK" => 24,
        b"PL" => 28,
        b"PS" => 29,
        b"PT" => 25,
        b"QA" => 29,
        b"RO" => 24,
        b"RS" => 22,
        b"RU" => 33,
        b"SA" => 24,
        b"SC" => 31,
        b"SD" => 18,
        b"SE" => 24,
        b"SI" => 19,
        b"SK" => 24,
        b"SM" => 27,
        b"SO" => 23,
        b"ST" => 25,
        b"SV" => 28,
        b"TL" => 23,
        b"TN" => 24,
        b"TR" => 26,
        b"UA" => 29,
        b"VA" => 22,
        b"VG" => 24,
        b"XK" => 20,
        b"YE" => 30,
        _ => return None,
    };
    Some(l)
}

/// ISO 7064 mod-97-10 over a compact (no separators) upper-case IBAN.
pub fn iban_mod97(iban: &[u8]) -> bool {
    if iban.len() < 5 {
        return false;
    }
    let mut rem: u32 = 0;
    let rotated = iban[4..].iter().chain(iban[..4].iter());
    for &c in rotated {
        match c {
            b'0'..=b'9' => rem = (rem * 10 + (c - b'0') as u32) % 97,
            b'A'..=b'Z' => rem = (rem * 100 + (c - b'A' + 10) as u32) % 97,
            _ => return false,
        }
    }
    rem == 1
}

/// Legacy Bitcoin address: base58check, 25 bytes, version 0x00 (P2PKH) or 0x05 (P2SH).
pub fn btc_base58(addr: &str) -> bool {
    match bs58::decode(addr).with_check(None).into_vec() {
        // into_vec with check keeps the version byte and strips the 4 checksum bytes.
        Ok(v) => v.len() == 21 && (v[0] == 0x00 || v[0] == 0x05),
        Err(_) => false,
    }
}

const BECH32_CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

fn bech32_polymod(values: &[u8]) -> u32 {
    const GEN: [u32; 5] = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
    let mut chk: u32 = 1;
    for &v in values {
        let b = chk >> 25;
        chk = ((chk & 0x1ffffff) << 5) ^ v as u32;
        for (i, g) in GEN.iter().enumerate() {
            if (b >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

/// Segwit address with hrp `bc`: bech32 (v0) or bech32m (v1+) checksum, all one case.
pub fn btc_bech32(addr: &str) -> bool {
    let lower = addr.to_ascii_lowercase();
    if lower != addr && addr.to_ascii_uppercase() != addr {
        return false; // mixed case is invalid bech32
    }
    let Some(pos) = lower.rfind('1') else {
        return false;
    };
    let (hrp, data) = (&lower[..pos], &lower[pos + 1..]);
    if hrp != "bc" || data.len() < 7 || lower.len() > 90 {
        return false;
    }
    let mut values: Vec<u8> = Vec::with_capacity(hrp.len() * 2 + 1 + data.len());
    values.extend(hrp.bytes().map(|c| c >> 5));
    values.push(0);
    values.extend(hrp.bytes().map(|c| c & 31));
    for c in data.bytes() {
        match BECH32_CHARSET.iter().position(|&x| x == c) {
            Some(p) => values.push(p as u8),
            None => return false,
        }
    }
    let pm = bech32_polymod(&values);
    let witver = values[hrp.len() * 2 + 1];
    (witver == 0 && pm == 1) || (witver != 0 && pm == 0x2bc830a3)
}

/// Ethereum address `0x` + 40 hex; mixed case must satisfy the EIP-55 checksum.
pub fn eth_address(addr: &[u8]) -> bool {
    if addr.len() != 42 || addr[0] != b'0' || (addr[1] | 0x20) != b'x' {
        return false;
    }
    let hex = &addr[2..];
    if !hex.iter().all(|c| c.is_ascii_hexdigit()) {
        return false;
    }
    let has_lower = hex.iter().any(|c| c.is_ascii_lowercase());
    let has_upper = hex.iter().any(|c| c.is_ascii_uppercase());
    if !(has_lower && has_upper) {
        // Single-case addresses carry no checksum; reject the degenerate all-zero one.
        return hex.iter().any(|&c| c != b'0');
    }
    use sha3::{Digest as _, Keccak256};
    let lower: Vec<u8> = hex.iter().map(|c| c.to_ascii_lowercase()).collect();
    let hash = Keccak256::digest(&lower);
    hex.iter().enumerate().all(|(i, &c)| {
        let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0xf;
        if c.is_ascii_alphabetic() {
            c.is_ascii_uppercase() == (nibble >= 8)
        } else {
            true
        }
    })
}

/// SSN area/group/serial rules of the SSA (pre- and post-randomization) plus well-known fakes.
pub fn ssn_valid(d: &[u8]) -> bool {
    if d.len() != 9 || !d.iter().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let area = &d[..3];
    if area == b"000" || area == b"666" || area[0] == b'9' {
        return false;
    }
    if &d[3..5] == b"00" || &d[5..] == b"0000" {
        return false;
    }
    if d.iter().all(|&c| c == d[0]) {
        return false;
    }
    // Advertising and documentation numbers that are never real.
    !matches!(d, b"078051120" | b"219099999" | b"123456789" | b"987654321")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_known() {
        assert!(luhn(b"4111111111111111"));
        assert!(luhn(b"4111 1111 1111 1111"));
        assert!(!luhn(b"4111111111111112"));
        assert!(luhn(b"378282246310005"));
    }

    #[test]
    fn iban_known() {
        assert!(iban_mod97(b"GB82WEST12345698765432"));
        assert!(iban_mod97(b"DE89370400440532013000"));
        assert!(!iban_mod97(b"DE89370400440532013001"));
    }

    #[test]
    fn btc_known() {
        assert!(btc_base58("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"));
        assert!(!btc_base58("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb"));
        assert!(btc_bech32("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"));
        assert!(!btc_bech32("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdr"));
        assert!(btc_bech32(
            "bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3297"
        ));
    }

    #[test]
    fn eth_known() {
        assert!(eth_address(b"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"));
        assert!(!eth_address(b"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"));
        assert!(eth_address(b"0x52908400098527886e0f7030069857d2e4169ee7"));
    }

    #[test]
    fn ssn_rules() {
        assert!(ssn_valid(b"536904399"));
        assert!(!ssn_valid(b"000123456"));
        assert!(!ssn_valid(b"666123456"));
        assert!(!ssn_valid(b"900123456"));
        assert!(!ssn_valid(b"123004567"));
        assert!(!ssn_valid(b"123450000"));
    }
}
