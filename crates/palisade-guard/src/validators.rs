//! Checksum validators for the PII detector (reference section 4.3).
//!
//! Every validator takes the matched text (it may contain spaces, dashes or slashes) and
//! returns whether the checksum holds. None of them panics on any input.

/// ASCII digits of `s` as numbers, ignoring everything else.
fn digits(s: &str) -> Vec<u32> {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| u32::from(b - b'0'))
        .collect()
}

/// Upper-cased ASCII alphanumerics of `s`.
fn alnum_upper(s: &str) -> Vec<u8> {
    s.bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| b.to_ascii_uppercase())
        .collect()
}

/// Whether `y-m-d` is a valid Gregorian date.
pub fn valid_date(year: u32, month: u32, day: u32) -> bool {
    if !(1..=12).contains(&month) || day == 0 {
        return false;
    }
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    let dim = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if leap => 29,
        _ => 28,
    };
    day <= dim
}

/// Luhn checksum over the digits of `s` (at least two digits).
pub fn luhn(s: &str) -> bool {
    let d = digits(s);
    if d.len() < 2 {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 { y - 9 } else { y }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// IBAN length per country (ISO 13616 registry).
pub fn iban_length(country: &[u8]) -> Option<usize> {
    let len = match country {
        b"AD" => 24,
        b"AE" => 23,
        b"AL" => 28,
        b"AT" => 20,
        b"AZ" => 28,
        b"BA" => 20,
        b"BE" => 16,
        b"BG" => 22,
        b"BH" => 22,
        b"BR" => 29,
        b"BY" => 28,
        b"CH" => 21,
        b"CR" => 22,
        b"CY" => 28,
        b"CZ" => 24,
        b"DE" => 22,
        b"DK" => 18,
        b"DO" => 28,
        b"EE" => 20,
        b"EG" => 29,
        b"ES" => 24,
        b"FI" => 18,
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
        b"MC" => 27,
        b"MD" => 24,
        b"ME" => 22,
        b"MK" => 19,
        b"MR" => 27,
        b"MT" => 31,
        b"MU" => 30,
        b"NL" => 18,
        b"NO" => 15,
        b"PK" => 24,
        b"PL" => 28,
        b"PS" => 29,
        b"PT" => 25,
        b"QA" => 29,
        b"RO" => 24,
        b"RS" => 22,
        b"SA" => 24,
        b"SC" => 31,
        b"SE" => 24,
        b"SI" => 19,
        b"SK" => 24,
        b"SM" => 27,
        b"ST" => 25,
        b"SV" => 28,
        b"TL" => 23,
        b"TN" => 24,
        b"TR" => 26,
        b"UA" => 29,
        b"VA" => 22,
        b"VG" => 24,
        b"XK" => 20,
        _ => return None,
    };
    Some(len)
}

/// IBAN: known country, the country's length, check digits, and mod-97 = 1.
pub fn iban(s: &str) -> bool {
    let v = alnum_upper(s);
    if v.len() < 5 {
        return false;
    }
    let Some(len) = iban_length(&v[..2]) else {
        return false;
    };
    if v.len() != len
        || !v[..2].iter().all(u8::is_ascii_uppercase)
        || !v[2..4].iter().all(u8::is_ascii_digit)
    {
        return false;
    }
    let mut rem: u32 = 0;
    for &b in v[4..].iter().chain(v[..4].iter()) {
        if b.is_ascii_digit() {
            rem = (rem * 10 + u32::from(b - b'0')) % 97;
        } else {
            let n = u32::from(b - b'A') + 10;
            rem = (rem * 100 + n) % 97;
        }
    }
    rem == 1
}

/// Estonian isikukood: 11 digits, first digit 1–6 gives sex and century, valid date,
/// mod-11 check digit with two weight rounds.
pub fn estonian_id(s: &str) -> bool {
    let d = digits(s);
    if d.len() != 11 {
        return false;
    }
    let century = match d[0] {
        1 | 2 => 1800,
        3 | 4 => 1900,
        5 | 6 => 2000,
        _ => return false,
    };
    let year = century + d[1] * 10 + d[2];
    let month = d[3] * 10 + d[4];
    let day = d[5] * 10 + d[6];
    if !valid_date(year, month, day) {
        return false;
    }
    const W1: [u32; 10] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 1];
    const W2: [u32; 10] = [3, 4, 5, 6, 7, 8, 9, 1, 2, 3];
    let s1: u32 = d.iter().zip(W1).map(|(a, b)| a * b).sum();
    let mut check = s1 % 11;
    if check == 10 {
        let s2: u32 = d.iter().zip(W2).map(|(a, b)| a * b).sum();
        check = s2 % 11;
        if check == 10 {
            check = 0;
        }
    }
    check == d[10]
}

/// Italian codice fiscale: 16 chars, check letter from the odd/even tables.
pub fn codice_fiscale(s: &str) -> bool {
    let v = alnum_upper(s);
    if v.len() != 16 {
        return false;
    }
    const ODD: [u32; 26] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24,
        23,
    ];
    let mut sum = 0u32;
    for (i, &b) in v[..15].iter().enumerate() {
        let idx = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b - b'A')
        };
        // Positions are 1-based in the specification: odd positions are even indexes.
        if i % 2 == 0 {
            sum += ODD.get(idx as usize).copied().unwrap_or(0);
        } else {
            sum += idx;
        }
    }
    let expected = b'A' + (sum % 26) as u8;
    v[15] == expected
}

/// French NIR (15 chars): key = 97 − (first 13 digits mod 97); Corsica `2A`/`2B` in the
/// department become `19`/`18`.
pub fn france_nir(s: &str) -> bool {
    let v = alnum_upper(s);
    if v.len() != 15 {
        return false;
    }
    let mut num: Vec<u8> = v.clone();
    // Department is at positions 5..7.
    match (num[5], num[6]) {
        (b'2', b'A') => {
            num[5] = b'1';
            num[6] = b'9';
        }
        (b'2', b'B') => {
            num[5] = b'1';
            num[6] = b'8';
        }
        _ => {}
    }
    if !num.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut rem: u64 = 0;
    for &b in &num[..13] {
        rem = (rem * 10 + u64::from(b - b'0')) % 97;
    }
    let key = u64::from(num[13] - b'0') * 10 + u64::from(num[14] - b'0');
    97 - rem == key
}

/// Finnish HETU: `DDMMYY` + century sign + `ZZZ` + check char (mod 31).
pub fn finland_hetu(s: &str) -> bool {
    let v: Vec<u8> = s.bytes().map(|b| b.to_ascii_uppercase()).collect();
    if v.len() != 11 {
        return false;
    }
    if !v[..6].iter().all(u8::is_ascii_digit) || !v[7..10].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let century = match v[6] {
        b'+' => 1800,
        b'-' | b'U'..=b'Y' => 1900,
        b'A'..=b'F' => 2000,
        _ => return false,
    };
    let d = |i: usize| u32::from(v[i] - b'0');
    let day = d(0) * 10 + d(1);
    let month = d(2) * 10 + d(3);
    let year = century + d(4) * 10 + d(5);
    if !valid_date(year, month, day) {
        return false;
    }
    let n: u32 = [0, 1, 2, 3, 4, 5, 7, 8, 9]
        .iter()
        .fold(0u32, |acc, &i| acc * 10 + d(i));
    const CHECK: &[u8; 31] = b"0123456789ABCDEFHJKLMNPRSTUVWXY";
    CHECK[(n % 31) as usize] == v[10]
}

const DNI_LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";

/// Spanish DNI: 8 digits + letter (mod 23).
pub fn spain_dni(s: &str) -> bool {
    let v = alnum_upper(s);
    if v.len() != 9 || !v[..8].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let n = v[..8]
        .iter()
        .fold(0u32, |acc, &b| acc * 10 + u32::from(b - b'0'));
    DNI_LETTERS[(n % 23) as usize] == v[8]
}

/// Spanish NIE: X/Y/Z become 0/1/2, then the DNI rule.
pub fn spain_nie(s: &str) -> bool {
    let mut v = alnum_upper(s);
    if v.len() != 9 {
        return false;
    }
    v[0] = match v[0] {
        b'X' => b'0',
        b'Y' => b'1',
        b'Z' => b'2',
        _ => return false,
    };
    match std::str::from_utf8(&v) {
        Ok(t) => spain_dni(t),
        Err(_) => false,
    }
}

/// Polish PESEL: a valid birth date (the month carries the century: +80 for the 1800s,
/// +0, +20, +40, +60 for the 1900s–2200s), weights 1,3,7,9,1,3,7,9,1,3 and a check digit.
pub fn poland_pesel(s: &str) -> bool {
    let d = digits(s);
    if d.len() != 11 {
        return false;
    }
    let yy = d[0] * 10 + d[1];
    let mm = d[2] * 10 + d[3];
    let day = d[4] * 10 + d[5];
    let (century, month) = match mm {
        81..=92 => (1800, mm - 80),
        1..=12 => (1900, mm),
        21..=32 => (2000, mm - 20),
        41..=52 => (2100, mm - 40),
        61..=72 => (2200, mm - 60),
        _ => return false,
    };
    if !valid_date(century + yy, month, day) {
        return false;
    }
    const W: [u32; 10] = [1, 3, 7, 9, 1, 3, 7, 9, 1, 3];
    let sum: u32 = d.iter().zip(W).map(|(a, b)| a * b).sum();
    (10 - sum % 10) % 10 == d[10]
}

/// German Steuer-ID: 11 digits, first not 0; in the first ten digits exactly one digit
/// occurs two or three times and the others at most once; ISO 7064 MOD 11,10 check digit.
pub fn germany_steuer_id(s: &str) -> bool {
    let d = digits(s);
    if d.len() != 11 || d[0] == 0 {
        return false;
    }
    let mut counts = [0u8; 10];
    for &x in &d[..10] {
        counts[x as usize] += 1;
    }
    let multi: Vec<u8> = counts.iter().copied().filter(|&c| c > 1).collect();
    if multi.len() != 1 || multi[0] > 3 {
        return false;
    }
    let mut product = 10u32;
    for &x in &d[..10] {
        let mut sum = (x + product) % 10;
        if sum == 0 {
            sum = 10;
        }
        product = (sum * 2) % 11;
    }
    let mut check = 11 - product;
    if check == 10 {
        check = 0;
    }
    check == d[10]
}

/// Czech/Slovak birth number: `YYMMDD[/]XXX[X]`; valid date (month +50 for women, +20
/// since 2004); the 10-digit form must be divisible by 11; the 9-digit form only exists
/// for births before 1954.
pub fn czech_birth_number(s: &str) -> bool {
    let d = digits(s);
    if d.len() != 9 && d.len() != 10 {
        return false;
    }
    let yy = d[0] * 10 + d[1];
    let mut month = d[2] * 10 + d[3];
    let day = d[4] * 10 + d[5];
    if month > 70 {
        month -= 70;
    } else if month > 50 {
        month -= 50;
    } else if month > 20 {
        month -= 20;
    }
    let year = if d.len() == 9 {
        if yy >= 54 {
            return false;
        }
        1900 + yy
    } else if yy < 54 {
        2000 + yy
    } else {
        1900 + yy
    };
    if !valid_date(year, month, day) {
        return false;
    }
    if d.len() == 10 {
        let n = d.iter().fold(0u64, |acc, &x| acc * 10 + u64::from(x));
        return n % 11 == 0;
    }
    true
}

/// Dutch BSN elfproef: 9 digits, Σ dᵢ·(9−i) for the first eight minus the last ≡ 0 mod 11.
pub fn netherlands_bsn(s: &str) -> bool {
    let d = digits(s);
    if d.len() != 9 || d.iter().all(|&x| x == 0) {
        return false;
    }
    let sum: i64 = d[..8]
        .iter()
        .enumerate()
        .map(|(i, &x)| i64::from(x) * (9 - i as i64))
        .sum::<i64>()
        - i64::from(d[8]);
    sum % 11 == 0
}

/// Swedish personnummer: Luhn on the 10-digit form (a 12-digit form drops the century).
pub fn sweden_personnummer(s: &str) -> bool {
    let d = digits(s);
    let ten = match d.len() {
        10 => &d[..],
        12 => &d[2..],
        _ => return false,
    };
    let month = ten[2] * 10 + ten[3];
    let day = ten[4] * 10 + ten[5];
    // Coordination numbers add 60 to the day.
    let day = if day > 60 { day - 60 } else { day };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return false;
    }
    let s: String = ten.iter().map(|x| char::from(b'0' + *x as u8)).collect();
    luhn(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_basic() {
        assert!(luhn("4111 1111 1111 1111"));
        assert!(!luhn("1234 5678 9012 3456"));
    }

    #[test]
    fn iban_basic() {
        assert!(iban("EE382200221020145685"));
        assert!(iban("GB82 WEST 1234 5698 7654 32"));
        assert!(!iban("EE382200221020145686"));
    }
}
