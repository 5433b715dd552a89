//! Every checksum validator with valid and invalid values.

use palisade_guard::validators as v;

#[test]
fn luhn() {
    assert!(v::luhn("4539 1488 0343 6467"));
    assert!(v::luhn("378282246310005"));
    assert!(!v::luhn("1234 5678 9012 3456"));
    assert!(!v::luhn("4539 1488 0343 6468"));
    assert!(!v::luhn(""));
}

#[test]
fn iban() {
    assert!(v::iban("EE382200221020145685"));
    assert!(v::iban("EE38 2200 2210 2014 5685"));
    assert!(v::iban("GB82 WEST 1234 5698 7654 32"));
    assert!(v::iban("DE89370400440532013000"));
    assert!(v::iban("FR1420041010050500013M02606"));
    assert!(!v::iban("EE382200221020145686"), "bad check digits");
    assert!(!v::iban("EE3822002210201456851"), "wrong length for EE");
    assert!(!v::iban("QQ382200221020145685"), "unknown country");
    assert!(!v::iban("DE8937040044053201300"), "too short for DE");
}

#[test]
fn estonian_id() {
    assert!(v::estonian_id("49002010965"));
    assert!(v::estonian_id("37605030299"));
    assert!(!v::estonian_id("38706181230"), "checksum");
    assert!(!v::estonian_id("79002010965"), "century digit");
    assert!(!v::estonian_id("49002300965"), "30 February");
}

#[test]
fn codice_fiscale() {
    assert!(v::codice_fiscale("RSSMRA85T10A562S"));
    assert!(v::codice_fiscale("rssmra85t10a562s"));
    assert!(!v::codice_fiscale("RSSMRA85T10A562T"));
}

#[test]
fn france_nir() {
    assert!(v::france_nir("255081416802538"));
    assert!(v::france_nir("2 55 08 14 168 025 38"));
    assert!(!v::france_nir("255081416802539"));
    // Corsica: 2A becomes 19, 2B becomes 18.
    assert!(v::france_nir(&corsica("2A")));
    assert!(v::france_nir(&corsica("2B")));
    assert!(!v::france_nir(&corsica("2A").replace("2A", "2B")));
}

fn corsica(dept: &str) -> String {
    let digits = if dept == "2A" { "19" } else { "18" };
    let base = format!("1850{}{}123456", 5, digits); // 1 85 05 <dept> 123 456
    let n: u64 = base.parse().unwrap_or(0);
    let key = 97 - n % 97;
    format!("18505{dept}123456{key:02}")
}

#[test]
fn finland_hetu() {
    assert!(v::finland_hetu("131052-308T"));
    assert!(v::finland_hetu("131052-308t"));
    assert!(!v::finland_hetu("131052-308U"));
    assert!(!v::finland_hetu("311352-308T"), "invalid date");
}

#[test]
fn spain_dni_nie() {
    assert!(v::spain_dni("12345678Z"));
    assert!(v::spain_dni("12345678-Z"));
    assert!(!v::spain_dni("12345678A"));
    assert!(v::spain_nie("X1234567L"));
    assert!(v::spain_nie("Y1234567X"));
    assert!(!v::spain_nie("X1234567A"));
    assert!(!v::spain_nie("A1234567L"));
}

#[test]
fn poland_pesel() {
    assert!(v::poland_pesel("44051401359"));
    assert!(!v::poland_pesel("44051401358"));
    assert!(v::poland_pesel("02270803624"), "born 2002: month + 20");
    assert!(!v::poland_pesel("44133401359"), "month 13 is not a month");
}

#[test]
fn germany_steuer_id() {
    assert!(v::germany_steuer_id("86095742719"));
    assert!(v::germany_steuer_id("65929970489"));
    assert!(!v::germany_steuer_id("86095742718"), "check digit");
    assert!(!v::germany_steuer_id("12345678903"), "no repeated digit");
    assert!(!v::germany_steuer_id("06095742719"), "leading zero");
}

#[test]
fn czech_birth_number() {
    assert!(v::czech_birth_number("7801230019"));
    assert!(v::czech_birth_number("780123/0019"));
    assert!(v::czech_birth_number("8551120006"), "woman: month + 50");
    assert!(!v::czech_birth_number("7801230018"), "not divisible by 11");
    assert!(!v::czech_birth_number("7813230007"), "month 13");
    assert!(
        v::czech_birth_number("450101123"),
        "9-digit form before 1954"
    );
    assert!(
        !v::czech_birth_number("780101123"),
        "9-digit form after 1954"
    );
}

#[test]
fn netherlands_bsn() {
    assert!(v::netherlands_bsn("111222333"));
    assert!(v::netherlands_bsn("123456782"));
    assert!(!v::netherlands_bsn("123456789"));
    assert!(!v::netherlands_bsn("000000000"));
}

#[test]
fn sweden_personnummer() {
    assert!(v::sweden_personnummer("811228-9874"));
    assert!(v::sweden_personnummer("19811228-9874"));
    assert!(v::sweden_personnummer("8112289874"));
    assert!(!v::sweden_personnummer("811228-9875"));
}
