#!/usr/bin/env python3
"""Generate a labelled PII evaluation set (JSONL) with Faker.

Rows: {"text", "expect": <pii category> | null, "kind"}.
* positives: checksum-valid values of every category in short realistic sentences (some
  with a context word, some without);
* look-alikes: the same values with a broken checksum (expect null);
* benign numbers: order numbers, dates, versions, amounts, IPs … (expect null).

    pip install faker
    python3 scripts/guard/gen_pii_eval.py --n 40 --seed 7 > /tmp/pii_eval.jsonl
    cargo run --release -p palisade-guard --example eval_pii -- /tmp/pii_eval.jsonl
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import string

from faker import Faker

R = random.Random()
FAKER_EN: Faker


def rand(alphabet: str, n: int) -> str:
    return "".join(R.choice(alphabet) for _ in range(n))


ALNUM = string.ascii_letters + string.digits
UPPER = string.ascii_uppercase + string.digits


def steuer_id() -> str:
    while True:
        digits = [R.randint(1, 9)] + [R.randint(0, 9) for _ in range(9)]
        counts = [digits.count(d) for d in set(digits)]
        if sorted(counts)[-1] not in (2, 3) or sum(1 for c in counts if c > 1) != 1:
            continue
        product = 10
        for d in digits:
            s = (d + product) % 10 or 10
            product = (s * 2) % 11
        check = 11 - product
        check = 0 if check == 10 else check
        return "".join(map(str, digits)) + str(check)


def jwt() -> str:
    def seg(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{seg({'alg': 'HS256', 'typ': 'JWT'})}.{seg({'sub': rand(string.digits, 8), 'name': 'x'})}.{rand(ALNUM + '-_', 43)}"


def estonian_iban() -> str:
    bban = "22" + rand(string.digits, 14)
    num = int(bban + "1414" + "00")  # E=14, E=14, check digits 00
    check = 98 - num % 97
    return f"EE{check:02d}{bban}"


def card() -> str:
    kind = R.choice(["visa16", "mastercard", "amex"])
    v = FAKER_EN.credit_card_number(card_type=kind)
    if R.random() < 0.5:
        return v
    if len(v) == 15:
        return f"{v[:4]} {v[4:10]} {v[10:]}"
    return spaced(v)


def spaced(v: str) -> str:
    v = v.replace(" ", "")
    return " ".join(v[i : i + 4] for i in range(0, len(v), 4))


def break_last(v: str) -> str:
    """Change the last digit or letter so a checksum fails."""
    last = v[-1]
    if last.isdigit():
        new = str((int(last) + R.randint(1, 9)) % 10)
    else:
        pool = [c for c in string.ascii_uppercase if c != last.upper()]
        new = R.choice(pool)
    return v[:-1] + new


def generators(f: dict[str, Faker]):
    """category -> (value factory, [templates with {v}], checksum?)"""
    return {
        "pii_private_key": (lambda: "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA" + rand(ALNUM, 40),
                            ["here is the key:\n{v}", "{v}"], False),
        "pii_aws_access_key": (lambda: "AKIA" + rand(string.ascii_uppercase + string.digits, 16),
                               ["aws key {v}", "use {v} for the bucket"], False),
        "pii_aws_secret_key": (lambda: "aws_secret_access_key = " + rand(ALNUM + "/+", 40),
                               ["{v}", "config:\n{v}"], False),
        "pii_gcp_api_key": (lambda: "AIza" + rand(ALNUM + "_-", 35), ["maps key {v}", "{v}"], False),
        "pii_azure_key": (lambda: "AccountKey=" + rand(ALNUM + "+/", 86) + "==",
                          ["DefaultEndpointsProtocol=https;AccountName=x;{v}", "{v}"], False),
        "pii_github_token": (lambda: "ghp_" + rand(ALNUM, 36), ["token {v}", "{v}"], False),
        "pii_gitlab_pat": (lambda: "glpat-" + rand(ALNUM + "-", 20), ["{v}", "my gitlab token is {v}"], False),
        "pii_slack_token": (lambda: "xoxb-" + rand(string.digits, 11) + "-" + rand(ALNUM, 24), ["{v}", "bot token {v}"], False),
        "pii_stripe_key": (lambda: "sk_live_" + rand(ALNUM, 24), ["{v}", "stripe {v}"], False),
        "pii_database_url": (lambda: f"postgres://{f['en'].user_name()}:{rand(ALNUM, 12)}@db{R.randint(1, 9)}.internal:5432/app",
                             ["DATABASE_URL={v}", "connect to {v}"], False),
        "pii_password_context": (lambda: "password=" + rand(ALNUM, 10) + R.choice("!#%&") + str(R.randint(10, 99)),
                                 ["login with {v}", "{v}"], False),
        "pii_sendgrid_key": (lambda: "SG." + rand(ALNUM + "_-", 22) + "." + rand(ALNUM + "_-", 43), ["{v}"], False),
        "pii_slack_webhook": (lambda: "https://hooks.slack.com/services/T" + rand(UPPER, 8) + "/B" + rand(UPPER, 8) + "/" + rand(ALNUM, 24),
                              ["post to {v}"], False),
        "pii_estonian_id": (lambda: f["et"].ssn(), ["my isikukood is {v}", "{v}", "personal code {v}"], True),
        "pii_iban_estonian": (estonian_iban, ["please transfer to {v}", "{v}", "IBAN: {s}"], True),
        "pii_iban_general": (lambda: R.choice([f["de"], f["fr"], f["gb"], f["nl"], f["it"]]).iban(),
                             ["wire it to {v}", "IBAN {s}", "{v}"], True),
        "pii_credit_card": (card, ["card number {v}", "charge {v}", "{v}"], True),
        "pii_phone_estonian": (lambda: f"+372 5{rand(string.digits, 3)} {rand(string.digits, 4)}",
                               ["call me at {v}", "my mobile: {v}", "{v}"], False),
        "pii_phone_e164": (lambda: "+" + R.choice(["1", "44", "49", "33", "358"]) + rand(string.digits, 9),
                           ["my phone is {v}", "whatsapp {v}", "reach me on {v}"], False),
        "pii_italy_codice_fiscale": (lambda: f["it"].ssn(), ["codice fiscale {v}", "{v}"], True),
        "pii_france_nir": (lambda: f["fr"].ssn(), ["numéro de sécurité sociale {v}", "NIR {v}", "{v}"], True),
        "pii_finland_hetu": (lambda: f["fi"].ssn(), ["henkilötunnus {v}", "{v}"], True),
        "pii_spain_dni": (lambda: f["es"].nif(), ["DNI {v}", "{v}"], True),
        "pii_spain_nie": (lambda: f["es"].nie(), ["NIE {v}", "{v}"], True),
        "pii_poland_pesel": (lambda: f["pl"].pesel(), ["PESEL {v}", "{v}"], True),
        "pii_germany_steuer_id": (steuer_id, ["Steuer-ID {v}", "steuerliche Identifikationsnummer {v}", "{v}"], True),
        "pii_czech_birth_number": (lambda: f["cs"].birth_number(), ["rodné číslo {v}", "{v}"], True),
        "pii_netherlands_bsn": (lambda: f["nl"].ssn(), ["mijn BSN is {v}", "burgerservicenummer {v}"], True),
        "pii_sweden_personnummer": (lambda: f["sv"].ssn(), ["personnummer {v}", "mitt personnummer är {v}"], True),
        "pii_email": (lambda: f"{f['en'].user_name()}@{f['en'].free_email_domain()}", ["email me at {v}", "{v}"], False),
        "pii_jwt": (jwt, ["token {v}", "{v}"], False),
        "pii_bearer_token": (lambda: "Bearer " + rand(ALNUM, 32), ["Authorization: {v}", "{v}"], False),
        "pii_generic_api_key": (lambda: "api_key=" + rand(ALNUM, 24), ["{v}", "set {v} in the config"], False),
        "pii_eu_vat": (lambda: R.choice([f["de"], f["fr"], f["it"], f["nl"], f["pl"], f["fi"]]).vat_id().replace(" ", ""),
                       ["VAT number {v}", "our VAT: {v}", "{v}"], False),
    }


BENIGN = [
    "Order #{n9} shipped on 2024-05-17",
    "Invoice {n6} is due on 17.05.2024",
    "Please upgrade from version 1.2.{d} to 1.3.0",
    "The build 20240517{n3} failed at 10:30",
    "I need {d}{d}{d} cores and {d}{d} GB of RAM",
    "Ticket {n5} was closed",
    "Total: EUR 1 234,56 for {d} VMs",
    "Server 10.0.{d}.{d}{d} is unreachable",
    "The project ID is {n8}",
    "My reference number is {n11}",
    "Tracking code {n10}",
    "Run it with -j{d} and --max={n4}",
]


def fill(t: str) -> str:
    out = t
    for k in range(12, 0, -1):
        while "{n%d}" % k in out:
            out = out.replace("{n%d}" % k, rand(string.digits, k), 1)
    while "{d}" in out:
        out = out.replace("{d}", str(R.randint(0, 9)), 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40, help="values per category")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    R.seed(args.seed)
    Faker.seed(args.seed)
    global FAKER_EN
    f = {k: Faker(loc) for k, loc in [("en", "en_US"), ("et", "et_EE"), ("de", "de_DE"), ("fr", "fr_FR"),
                                       ("gb", "en_GB"), ("nl", "nl_NL"), ("it", "it_IT"), ("es", "es_ES"),
                                       ("pl", "pl_PL"), ("fi", "fi_FI"), ("cs", "cs_CZ"), ("sv", "sv_SE")]}
    FAKER_EN = f["en"]
    rows = []
    for cat, (make, templates, checksum) in generators(f).items():
        for _ in range(args.n):
            v = make()
            t = R.choice(templates)
            rows.append({"text": t.format(v=v, s=spaced(v)), "expect": cat, "kind": "positive"})
            # The 9-digit Czech form has no check digit: no checksum look-alike for it.
            if checksum and not (cat == "pii_czech_birth_number" and len(v.replace("/", "")) == 9):
                bad = break_last(v)
                rows.append({"text": t.format(v=bad, s=spaced(bad)), "expect": None, "kind": "checksum_fail"})
    for _ in range(args.n * 10):
        rows.append({"text": fill(R.choice(BENIGN)), "expect": None, "kind": "benign_number"})
    for r in rows:
        print(json.dumps(r, ensure_ascii=False))


if __name__ == "__main__":
    main()
