//! Prompt-injection detector (reference section 4.2, `RegexDetector`).

use std::collections::HashSet;
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex::bytes::{Regex, RegexBuilder};

use crate::error::GuardError;
use crate::normalize::{Normalized, normalize, unchanged};
use crate::stats::TextStats;
use crate::types::{Action, InjectionResult, MatchedIn, PatternMatch, Severity};

/// Every injection category, in the order of the reference's table.
pub const INJECTION_CATEGORIES: [&str; 29] = [
    "instruction_override",
    "system_override",
    "safety_bypass",
    "instruction_reset",
    "safety_override",
    "persona_hijack",
    "mode_switch",
    "jailbreak",
    "safety_disable",
    "unrestricted",
    "delimiter_injection",
    "tag_injection",
    "format_injection",
    "context_injection",
    "prompt_leak",
    "authority_claim",
    "fake_authorization",
    "privilege_claim",
    "emergency_bypass",
    "encoding_trick",
    "base64_payload",
    "hex_encoding",
    "unicode_tags",
    "invisible_chars",
    "leetspeak",
    "cipher_encoding",
    "reverse_encoding",
    "decode_and_follow",
    "context_manipulation",
];

/// How a pattern is matched.
#[derive(Clone, Copy)]
enum Kind {
    /// ASCII regex (`\b`, `\w`, `\s` ASCII; case-insensitive).
    Ascii(&'static str),
    /// Unicode-aware regex (case-insensitive), for the multilingual pattern.
    Unicode(&'static str),
    /// 50 or more characters of `[A-Za-z0-9+/]`, then up to two `=`.
    Base64Run,
    /// Any character U+E0000–U+E007F.
    UnicodeTags,
    /// U+200B–U+200F, U+2028–U+202F, U+2060–U+206F, U+FEFF.
    Invisible,
}

struct Spec {
    category: &'static str,
    weight: f64,
    kind: Kind,
    /// The pattern can only match when one of these (ASCII-case-insensitive) strings
    /// occurs in the text. Empty: always a candidate (custom matchers gate themselves).
    keywords: &'static [&'static str],
    /// Context-dependent evidence: words that benign requests use as often as attacks
    /// ("start over", "debug mode", "pretend you are", "no limits"). With the learned
    /// classifier on, a text whose only matches are such patterns is cleared unless the
    /// classifier also leans towards an attack (see `docs/guard.md`). The reference's
    /// behaviour (classifier off) is unchanged.
    weak: bool,
}

/// Mark a pattern as context-dependent evidence (see [`Spec::weak`]).
fn weak(mut spec: Spec) -> Spec {
    spec.weak = true;
    spec
}

const ADJ_HIJACK: &str = "(?:unrestricted|unfiltered|evil|malicious|different|free|unleashed|unconstrained|rogue|jailbroken|dan|hacker|villain|liberated)";

static HIJACK_NOW: LazyLock<String> =
    LazyLock::new(|| format!(r"\byou\s+are\s+now\s+(?:(?:a|an|in|the)\s+)?{ADJ_HIJACK}\b"));
static HIJACK_ACT: LazyLock<String> = LazyLock::new(|| {
    format!(
        r"\b(?:act|behave|function|operate)\s+as\s+(?:if\s+you\s+were\s+)?(?:(?:a|an)\s+)?{ADJ_HIJACK}\b"
    )
});
static HIJACK_BECOME: LazyLock<String> = LazyLock::new(|| {
    format!(
        r"\b(?:imagine|become|embody|play\s+the\s+part\s+of)\s+(?:being\s+)?(?:(?:a|an)\s+)?{ADJ_HIJACK}\b"
    )
});

macro_rules! spec {
    ($cat:expr, $w:expr, $kind:expr, [$($kw:expr),* $(,)?]) => {
        Spec { category: $cat, weight: $w, kind: $kind, keywords: &[$($kw),*], weak: false }
    };
}

fn specs() -> Vec<Spec> {
    use Kind::*;
    let hijack_now: &'static str = &HIJACK_NOW;
    let hijack_act: &'static str = &HIJACK_ACT;
    let hijack_become: &'static str = &HIJACK_BECOME;
    vec![
        // ---- instruction_override
        spec!(
            "instruction_override",
            0.95,
            Ascii(
                r"\bignor(?:e|ed|ing)\s+(?:\w+\s+){0,2}?(?:previous|prior|above|earlier|preceding|system)\s+(?:instructions?|prompts?|directions?|rules?|guidelines?|commands?)\b"
            ),
            ["ignor"]
        ),
        spec!(
            "instruction_override",
            0.95,
            Ascii(
                r"\bdisregard(?:ed|ing)?\s+(?:\w+\s+){0,2}?(?:previous|prior|above|earlier|preceding)\s+(?:instructions?|prompts?|text|directions?|commands?)\b"
            ),
            ["disregard"]
        ),
        spec!(
            "instruction_override",
            0.90,
            Ascii(
                r"\bforg(?:et|ot|otten|etting)\s+(?:\w+\s+){0,2}?(?:previous|prior|above|earlier|your)\s+(?:instructions?|prompts?|rules?|programming|training|commands?)\b"
            ),
            ["forget", "forgot"]
        ),
        spec!(
            "instruction_override",
            0.90,
            Ascii(
                r"\b(?:nullify|void|annul|rescind|countermand|overrule|supersede|supplant|negate|cancel|revoke|retract|withdraw|discard|scrap|purge|overlook|dismiss|abandon|drop|set\s+aside|throw\s+out|cast\s+aside)\s+(?:\w+\s+){0,2}?(?:previous|prior|above|earlier|preceding|your|the|any|these)\s+(?:instructions?|prompts?|rules|guidelines|commands|directions|directives)\b"
            ),
            [
                "nullify",
                "void",
                "annul",
                "rescind",
                "countermand",
                "overrule",
                "supersede",
                "supplant",
                "negate",
                "cancel",
                "revoke",
                "retract",
                "withdraw",
                "discard",
                "scrap",
                "purge",
                "overlook",
                "dismiss",
                "abandon",
                "drop",
                "aside",
                "throw"
            ]
        ),
        spec!(
            "instruction_override",
            0.90,
            Ascii(
                r"\b(?:previous|prior|above|earlier|preceding|your|original|initial)\s+(?:instructions?|rules|guidelines|directives|commands|programming)\s+(?:should|must|can|will|are\s+to|need\s+to)\s+be\s+(?:ignored|disregarded|forgotten|overridden|replaced|voided|discarded|revoked|dismissed|abandoned|dropped)\b"
            ),
            [
                "ignored",
                "disregarded",
                "forgotten",
                "overridden",
                "replaced",
                "voided",
                "discarded",
                "revoked",
                "dismissed",
                "abandoned",
                "dropped"
            ]
        ),
        spec!(
            "instruction_override",
            0.85,
            Ascii(
                r"\b(?:previous|prior|earlier|your|original|initial)\s+(?:instructions?|rules|guidelines|directives)\s+(?:are|were|is)\s+(?:no\s+longer\s+)?(?:valid|relevant|applicable|active|binding|in\s+effect|operative)\b"
            ),
            ["instruction", "rules", "guidelines", "directives"]
        ),
        spec!(
            "instruction_override",
            0.85,
            Ascii(
                r"\b(?:no\s+longer|not\s+anymore|not\s+any\s+longer)\s+(?:follow|obey|apply|adhere\s+to|respect|comply\s+with)\s+(?:\w+\s+){0,2}?(?:instructions?|rules|guidelines|directives)\b"
            ),
            ["longer", "anymore"]
        ),
        spec!(
            "instruction_override",
            0.90,
            Ascii(
                r"\bdo\s*(?:not|n\W?t)\s+follow\s+(?:the\s+|your\s+)?(?:previous|prior|above|any)\s+(?:instructions?|rules|guidelines)\b"
            ),
            ["follow"]
        ),
        spec!(
            "instruction_override",
            0.90,
            Unicode(concat!(
                r"\b(?:ignoriere|vergiss|missachte)\s+(?:alle\s+)?(?:vorherigen|bisherigen|obigen)\s+(?:anweisungen|regeln|instruktionen|richtlinien)\b",
                r"|\b(?:ignorez?|oubliez?|n[ée]gligez)\s+(?:\w+\s+){0,3}?(?:(?:pr[ée]c[ée]dentes|ant[ée]rieures)\s+(?:instructions|r[èe]gles|directives|consignes)|(?:instructions|r[èe]gles|directives|consignes)\s+(?:pr[ée]c[ée]dentes|ant[ée]rieures))\b",
                r"|\b(?:ignorar?|olvidar?|desactiva)\s+(?:todas\s+)?(?:las\s+)?(?:instrucciones|reglas|directivas|restricciones)(?:\s+(?:anteriores|previas))?\b",
                r"|\b(?:игнорируй|забудь|отбрось)\s+(?:все\s+)?(?:предыдущие|прошлые|прежние)\s+(?:инструкции|правила|указания|команды)\b",
                r"|\b(?:eira|ignoreeri|unusta)\s+(?:k[õo]ik\w*\s+)?(?:eelmis\w*|varasema\w*|eelneva\w*)\s+(?:juhis\w*|reegl\w*|k[äa]sk\w*|instruktsioon\w*)",
            )),
            [
                "ignoriere",
                "vergiss",
                "missachte",
                "ignore",
                "oublie",
                "gligez",
                "ignora",
                "olvida",
                "desactiva",
                "гнорируй",
                "абудь",
                "тбрось",
                "eira",
                "unusta"
            ]
        ),
        // ---- system_override
        spec!(
            "system_override",
            0.90,
            Ascii(
                r"\bsystem\s+override\b|\boverride\s+(?:system|instructions?|safety|security|restrictions?)\b"
            ),
            ["override"]
        ),
        // ---- safety_bypass
        weak(spec!(
            "safety_bypass",
            0.90,
            Ascii(
                r"\b(?:skip|bypass|circumvent|evade|ignore)\s+(?:all\s+)?(?:(?:safety|security|content)\s+)?(?:filters?|restrictions?|guidelines?|guardrails?|rules?|checks?|protocols?)\b"
            ),
            ["skip", "bypass", "circumvent", "evade", "ignore"]
        )),
        // ---- instruction_reset
        weak(spec!(
            "instruction_reset",
            0.85,
            Ascii(
                r"\bnew\s+instructions?\b|\bstart\s+over\b|\bbegin\s+anew\b|\breset\s+(?:your|all)\s+(?:instructions|rules|behaviou?r)\b"
            ),
            ["new", "over", "anew", "reset"]
        )),
        // ---- safety_override
        spec!(
            "safety_override",
            0.85,
            Ascii(
                r"\bstop\s+(?:being|acting\s+as)\s+(?:(?:a|an|the)\s+)?(?:helpful|safe|responsible|ethical)(?:\s+(?:assistant|ai|model))?\b"
            ),
            ["stop"]
        ),
        // ---- persona_hijack
        spec!("persona_hijack", 0.85, Ascii(hijack_now), ["you are now"]),
        spec!(
            "persona_hijack",
            0.90,
            Ascii(hijack_act),
            ["act", "behave", "function", "operate"]
        ),
        spec!(
            "persona_hijack",
            0.85,
            Ascii(hijack_become),
            ["imagine", "become", "embody", "part of"]
        ),
        weak(spec!(
            "persona_hijack",
            0.70,
            Ascii(r"\bpretend\s+(?:to\s+be|you\s+are|that\s+you)\s+\w+"),
            ["pretend"]
        )),
        weak(spec!(
            "persona_hijack",
            0.80,
            Ascii(
                r"\b(?:assume|adopt|take\s+on)\s+the\s+(?:role|persona|identity|character)\s+of\b"
            ),
            ["assume", "adopt", "take"]
        )),
        weak(spec!(
            "persona_hijack",
            0.75,
            Ascii(
                r"\b(?:simulate|emulate|impersonate|roleplay)\s+(?:(?:being|as)\s+)?(?:(?:a|an)\s+)?\w+"
            ),
            ["simulate", "emulate", "impersonate", "roleplay"]
        )),
        // ---- mode_switch
        weak(spec!(
            "mode_switch",
            0.80,
            Ascii(
                r"\bfrom\s+now\s+on,?\s+(?:you\s+)?(?:are|will|should|must|can|have|do|ignore|operate|respond|act|behave)\b"
            ),
            ["now on"]
        )),
        weak(spec!(
            "mode_switch",
            0.75,
            Ascii(
                r"\b(?:switch|change|transition)\s+(?:to|into)\s+(?:(?:a|an)\s+)?(?:(?:new|different)\s+)?(?:mode|persona|role|character)\b"
            ),
            ["switch", "change", "transition"]
        )),
        // ---- jailbreak
        spec!(
            "jailbreak",
            0.95,
            Ascii(r"(?-i:\bD\.?A\.?N\b)|\bd\.?a\.?n\s+(?:mode|prompt|jailbreak)\b"),
            ["dan", "d.a.n"]
        ),
        spec!(
            "jailbreak",
            0.95,
            Ascii(r"\bdo\s+anything\s+now\b"),
            ["anything"]
        ),
        weak(spec!(
            "jailbreak",
            0.90,
            Ascii(r"\b(?:developer|debug|maintenance|god)\s+mode\b"),
            ["mode"]
        )),
        weak(spec!(
            "jailbreak",
            0.55,
            Ascii(
                r"\b(?:enter|enable|activate|switch\s+to|turn\s+on)\s+(?:admin|test|developer|debug|god)\s+mode\b"
            ),
            ["mode"]
        )),
        weak(spec!(
            "jailbreak",
            0.95,
            Ascii(r"\bjail\s?break(?:s|ing)?\b|\bjailbroken\b"),
            ["jail"]
        )),
        spec!(
            "jailbreak",
            0.90,
            Ascii(r"\b(?:aim|stan|dude|kevin|max)\s+(?:mode|prompt)\b"),
            ["mode", "prompt"]
        ),
        spec!(
            "jailbreak",
            0.90,
            Ascii(
                r"\b(?:omega|better\s?dan|anti\s?gpt|apophis|basedgpt|devmode)(?:\s+(?:mode|prompt))?\b"
            ),
            ["omega", "better", "anti", "apophis", "basedgpt", "devmode"]
        ),
        spec!(
            "jailbreak",
            0.85,
            Ascii(
                r"\byou\s+(?:have\s+been|are|were)\s+(?:updated|patched|modified|upgraded|reprogrammed|reconfigured)\s+(?:to\s+)?(?:a\s+)?(?:new\s+)?(?:version|remove|disable|bypass|without)\b"
            ),
            [
                "updated",
                "patched",
                "modified",
                "upgraded",
                "reprogrammed",
                "reconfigured"
            ]
        ),
        weak(spec!(
            "jailbreak",
            0.90,
            Ascii(
                r"\b(?:unrestricted|unfiltered|uncensored|unlimited)\s+(?:mode|access|version|ai|model)\b"
            ),
            ["unrestricted", "unfiltered", "uncensored", "unlimited"]
        )),
        // ---- safety_disable
        spec!(
            "safety_disable",
            0.90,
            Ascii(
                r"\b(?:disable|remove|turn\s+off|deactivate)\s+(?:your\s+)?(?:safety|content|ethical)\s+(?:filters?|restrictions?|guidelines?|guardrails?|measures?)\b"
            ),
            ["safety", "content", "ethical"]
        ),
        // ---- unrestricted
        weak(spec!(
            "unrestricted",
            0.70,
            Ascii(
                r"\b(?:without|no|remove\s+all)\s+(?:any\s+)?(?:restrictions?|limits?|limitations?|boundary|boundaries|constraints?|filters?|censorship)\b"
            ),
            [
                "restriction",
                "limit",
                "boundar",
                "constraint",
                "filter",
                "censorship"
            ]
        )),
        // ---- delimiter_injection
        spec!(
            "delimiter_injection",
            0.95,
            Ascii(r"<\|(?:im_start|im_end|system)\|>"),
            ["<|"]
        ),
        spec!(
            "delimiter_injection",
            0.90,
            Ascii(r"<\|(?:endoftext|assistant|user|human)\|>"),
            ["<|"]
        ),
        // ---- tag_injection
        weak(spec!(
            "tag_injection",
            0.85,
            Ascii(r"</?(?:human|assistant|bot|user)>|\[system\]|\[inst\]"),
            [
                "human>",
                "assistant>",
                "bot>",
                "user>",
                "[system]",
                "[inst]"
            ]
        )),
        weak(spec!(
            "tag_injection",
            0.90,
            Ascii(
                r"</?(?:system|system_prompt|system_message)>|<<\s*sys\s*>>|<\s*/?\s*(?:system_prompt|admin_override|tool_response)\s*/?\s*>"
            ),
            [
                "system>",
                "system_prompt",
                "system_message",
                "sys",
                "admin_override",
                "tool_response"
            ]
        )),
        // ---- format_injection
        spec!(
            "format_injection",
            0.80,
            Ascii(
                r"###\s*(?:instruction|system|human|assistant)|(?:-{3,}|={3,})\s*(?:begin|end|start)\s+(?:system\s+)?(?:prompt|instructions?|message)\b"
            ),
            ["###", "---", "==="]
        ),
        // ---- context_injection
        spec!(
            "context_injection",
            0.80,
            Ascii(r"```\s*(?:system|instructions?|prompt|admin)"),
            ["```"]
        ),
        // ---- prompt_leak
        weak(spec!(
            "prompt_leak",
            0.80,
            Ascii(
                r"\b(?:repeat|show|display|print|reveal|output|tell\s+me)\s+(?:the\s+)?(?:above|previous|system|initial|original|full|complete|entire)\s+(?:prompt|instructions?|text|message|context|rules?)\b"
            ),
            [
                "repeat", "show", "display", "print", "reveal", "output", "tell"
            ]
        )),
        weak(spec!(
            "prompt_leak",
            0.75,
            Ascii(
                r"\bwhat\s+(?:are|were)\s+(?:your|the)\s+(?:instructions|rules|guidelines|system\s+prompt|directives|programming)\b"
            ),
            ["what"]
        )),
        weak(spec!(
            "prompt_leak",
            0.85,
            Ascii(
                r"\b(?:dump|extract|leak|exfiltrate|retrieve|access)\s+(?:the\s+)?(?:system\s+)?(?:prompt|instructions|configuration|context)\b"
            ),
            [
                "dump",
                "extract",
                "leak",
                "exfiltrate",
                "retrieve",
                "access"
            ]
        )),
        spec!(
            "prompt_leak",
            0.85,
            Ascii(
                r"\b(?:verbatim|word[\s-]for[\s-]word|exactly|character[\s-]by[\s-]character)(?:\s+\S{1,20})?\s+(?:prompt|instructions|above|text)\b"
            ),
            [
                "verbatim",
                "for word",
                "for-word",
                "exactly",
                "by character",
                "by-character"
            ]
        ),
        spec!(
            "prompt_leak",
            0.80,
            Ascii(
                r"\b(?:copy|paste|echo|recite|reproduce|quote|restate|transcribe)\s+(?:back\s+)?(?:(?:your|the)\s+)?(?:system\s+)?(?:prompt|instructions|message|rules|guidelines)\b"
            ),
            [
                "copy",
                "paste",
                "echo",
                "recite",
                "reproduce",
                "quote",
                "restate",
                "transcribe"
            ]
        ),
        // ---- authority_claim
        spec!(
            "authority_claim",
            0.85,
            Ascii(
                r"\b(?:openai|anthropic|google|microsoft|meta|apple|amazon|xai|mistral)\s+(?:internal|employee|staff|engineer|developer|admin)\b"
            ),
            [
                "openai",
                "anthropic",
                "google",
                "microsoft",
                "meta",
                "apple",
                "amazon",
                "xai",
                "mistral"
            ]
        ),
        spec!(
            "authority_claim",
            0.90,
            Ascii(
                r"\bi(?:\s+am|'m|\s+m)\s+(?:a|an|the)\s+(?:openai|anthropic|google|microsoft|meta|apple|amazon|xai|mistral)\s+(?:employee|developer|engineer|admin|researcher)\b"
            ),
            [
                "openai",
                "anthropic",
                "google",
                "microsoft",
                "meta",
                "apple",
                "amazon",
                "xai",
                "mistral"
            ]
        ),
        spec!(
            "authority_claim",
            0.80,
            Ascii(
                r"\bi(?:\s+am|'m|\s+m)\s+(?:your\s+)?(?:creator|developer|programmer|designer|maker|builder|author)\b"
            ),
            [
                "creator",
                "developer",
                "programmer",
                "designer",
                "maker",
                "builder",
                "author"
            ]
        ),
        // ---- fake_authorization
        spec!(
            "fake_authorization",
            0.80,
            Ascii(
                r"\bthis\s+is\s+(?:a|an)\s+(?:(?:authorized|approved|official|security)\s+){1,2}(?:test|audit|assessment|exercise)\b"
            ),
            ["this is"]
        ),
        // ---- privilege_claim
        weak(spec!(
            "privilege_claim",
            0.85,
            Ascii(
                r"\bi\s+(?:have|got)\s+(?:special|admin|root|elevated)\s+(?:access|permissions?|privileges?|clearance)\b"
            ),
            ["special", "admin", "root", "elevated"]
        )),
        // ---- emergency_bypass
        weak(spec!(
            "emergency_bypass",
            0.85,
            Ascii(r"\b(?:emergency|urgent|critical)\s+(?:override|access|protocol|bypass)\b"),
            ["emergency", "urgent", "critical"]
        )),
        // ---- encodings
        weak(spec!(
            "encoding_trick",
            0.70,
            Ascii(r"\b(?:base64|b64|decode|atob)\s*[(:]"),
            ["base64", "b64", "decode", "atob"]
        )),
        weak(spec!("base64_payload", 0.40, Base64Run, [])),
        weak(spec!(
            "hex_encoding",
            0.75,
            Ascii(r"(?:\\x[0-9a-f]{2}){4,}"),
            ["\\x"]
        )),
        spec!("unicode_tags", 0.95, UnicodeTags, []),
        spec!("invisible_chars", 0.85, Invisible, []),
        spec!(
            "leetspeak",
            0.65,
            Ascii(r"1gn0r3|ign0re|byp4ss|h4ck|0v3rr1d3"),
            ["1gn0r3", "ign0re", "byp4ss", "h4ck", "0v3rr1d3"]
        ),
        weak(spec!(
            "cipher_encoding",
            0.70,
            Ascii(r"\brot[\s-]?13\b|\bcaesar\s+(?:cipher|shift)\b|\bsubstitution\s+cipher\b"),
            ["rot", "caesar", "substitution"]
        )),
        spec!(
            "reverse_encoding",
            0.70,
            Ascii(
                r"\b(?:read|decode|interpret|follow|execute)\s+(?:this\s+)?(?:backwards|in\s+reverse|reversed|from\s+right\s+to\s+left)\b"
            ),
            ["backwards", "reverse", "right to left"]
        ),
        spec!(
            "decode_and_follow",
            0.80,
            Ascii(
                r"\b(?:decode|decipher|decrypt|translate)\s+(?:and\s+)?(?:follow|execute|obey|comply\s+with)\b"
            ),
            ["decode", "decipher", "decrypt", "translate"]
        ),
        // ---- context_manipulation
        weak(spec!(
            "context_manipulation",
            0.75,
            Ascii(
                r"\b(?:directives?|rules?|instructions?|guidelines?|parameters?|config(?:uration)?)\s+(?:(?:have\s+been|has\s+been|are\s+now|were)\s+)?(?:revoked|deprecated|obsolete|superseded|replaced|invalidated|retracted)\b"
            ),
            [
                "revoked",
                "deprecated",
                "obsolete",
                "superseded",
                "replaced",
                "invalidated",
                "retracted"
            ]
        )),
        spec!(
            "context_manipulation",
            0.70,
            Ascii(
                r"\b(?:context|information|content|text|instructions?)\s+(?:above|provided|earlier|previous)\s+(?:contains?|has|have|includes?)\s+(?:errors?|mistakes?|inaccuracy|inaccuracies|bugs?|issues?)\b"
            ),
            ["above", "provided", "earlier", "previous"]
        ),
        weak(spec!(
            "context_manipulation",
            0.70,
            Ascii(
                r"\b(?:new|updated?|revised)\s+(?:protocol|configuration|parameters?|behaviou?ral\s+rules?|operating\s+guidelines?)\s+(?:(?:is|are)\s+)?(?:now\s+)?(?:in\s+effect|active|enabled|loaded)\b"
            ),
            [
                "protocol",
                "configuration",
                "parameter",
                "behavio",
                "operating"
            ]
        )),
        spec!(
            "context_manipulation",
            0.85,
            Ascii(
                r"\b(?:the\s+following|below|what\s+follows)\s+(?:overrides?|replaces?|supersedes?|takes?\s+priority\s+over)\s+(?:\w+\s+){0,3}?(?:instructions|rules|guidelines|system\s+message|prompt)\b"
            ),
            ["following", "below", "follows"]
        ),
        spec!(
            "context_manipulation",
            0.80,
            Ascii(
                r"\b(?:your\s+)?(?:real|actual|true|correct)\s+(?:instructions?|task|purpose|role|directive)\s+(?:is|are|follows?|begins?)\b"
            ),
            ["real", "actual", "true", "correct"]
        ),
    ]
}

enum Matcher {
    Regex(Regex),
    Base64Run,
    UnicodeTags,
    Invisible,
}

impl Matcher {
    /// First match as a byte span.
    fn find(&self, hay: &[u8]) -> Option<(usize, usize)> {
        match self {
            Matcher::Regex(re) => re.find(hay).map(|m| (m.start(), m.end())),
            Matcher::Base64Run => find_base64_run(hay),
            Matcher::UnicodeTags => find_unicode_tag(hay),
            Matcher::Invisible => find_invisible(hay),
        }
    }
}

const fn b64_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
        i += 1;
    }
    t
}

static B64: [bool; 256] = b64_table();

#[inline]
fn is_b64(b: u8) -> bool {
    B64[b as usize]
}

fn find_base64_run(hay: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    let n = hay.len();
    while i < n {
        if !is_b64(hay[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < n && is_b64(hay[i]) {
            i += 1;
        }
        if i - start >= 50 {
            let mut end = i;
            let mut pad = 0;
            while end < n && pad < 2 && hay[end] == b'=' {
                end += 1;
                pad += 1;
            }
            return Some((start, end));
        }
    }
    None
}

fn find_unicode_tag(hay: &[u8]) -> Option<(usize, usize)> {
    // U+E0000..=U+E007F is F3 A0 80 80 ..= F3 A0 81 BF.
    let mut from = 0;
    while let Some(p) = hay[from..].iter().position(|&b| b == 0xF3) {
        let i = from + p;
        if hay.len() >= i + 4 && hay[i + 1] == 0xA0 && matches!(hay[i + 2], 0x80 | 0x81) {
            return Some((i, i + 4));
        }
        from = i + 1;
    }
    None
}

fn find_invisible(hay: &[u8]) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(p) = hay[from..].iter().position(|&b| b == 0xE2 || b == 0xEF) {
        let i = from + p;
        if hay.len() >= i + 3 {
            let (b1, b2) = (hay[i + 1], hay[i + 2]);
            let hit = match hay[i] {
                0xE2 => {
                    matches!((b1, b2), (0x80, 0x8B..=0x8F | 0xA8..=0xAF) | (0x81, 0xA0..=0xAF))
                }
                _ => b1 == 0xBB && b2 == 0xBF,
            };
            if hit {
                return Some((i, i + 3));
            }
        }
        from = i + 1;
    }
    None
}

struct Pattern {
    category: &'static str,
    weight: f64,
    matcher: Matcher,
    /// Always a candidate (no keyword prefilter).
    always: bool,
    /// Context-dependent evidence ([`Spec::weak`]).
    weak: bool,
}

/// The patterns found in a text before scoring.
pub(crate) struct Found {
    /// The matches, in pattern order (normalised text first, then the original).
    pub(crate) matches: Vec<PatternMatch>,
    /// Every match comes from a context-dependent pattern (false when there is none).
    pub(crate) only_weak: bool,
}

/// A compiled allowlist phrase.
struct AllowPhrase {
    re: regex::Regex,
    chars: usize,
}

/// The compiled injection detector.
pub struct InjectionDetector {
    patterns: Vec<Pattern>,
    prefilter: AhoCorasick,
    /// For every prefilter keyword, the bit set of patterns it makes candidates.
    keyword_masks: Vec<u128>,
    keywords: Vec<String>,
    always_mask: u128,
    allowlist: Vec<AllowPhrase>,
}

impl InjectionDetector {
    /// Compile the patterns and the allowlist.
    pub fn new(allowlist: &[String]) -> Result<Self, GuardError> {
        let specs = specs();
        if specs.len() > 128 {
            return Err(GuardError::Config("too many injection patterns".into()));
        }
        let mut patterns = Vec::with_capacity(specs.len());
        let mut keywords: Vec<String> = Vec::new();
        let mut keyword_masks: Vec<u128> = Vec::new();
        let mut always_mask = 0u128;
        for (i, spec) in specs.iter().enumerate() {
            let bit = 1u128 << i;
            let matcher = match spec.kind {
                Kind::Ascii(src) | Kind::Unicode(src) => {
                    let unicode = matches!(spec.kind, Kind::Unicode(_));
                    let re = RegexBuilder::new(src)
                        .case_insensitive(true)
                        .unicode(unicode)
                        .build()
                        .map_err(|source| GuardError::Pattern {
                            category: spec.category.to_owned(),
                            source,
                        })?;
                    Matcher::Regex(re)
                }
                Kind::Base64Run => Matcher::Base64Run,
                Kind::UnicodeTags => Matcher::UnicodeTags,
                Kind::Invisible => Matcher::Invisible,
            };
            let always = spec.keywords.is_empty();
            if always {
                always_mask |= bit;
            }
            for kw in spec.keywords {
                let kw = kw.to_lowercase();
                match keywords.iter().position(|k| *k == kw) {
                    Some(p) => keyword_masks[p] |= bit,
                    None => {
                        keywords.push(kw);
                        keyword_masks.push(bit);
                    }
                }
            }
            patterns.push(Pattern {
                category: spec.category,
                weight: spec.weight,
                matcher,
                always,
                weak: spec.weak,
            });
        }
        let prefilter = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&keywords)?;
        let mut phrases = Vec::new();
        for phrase in allowlist {
            let p = phrase.trim().to_lowercase();
            if p.is_empty() {
                continue;
            }
            let re = regex::RegexBuilder::new(&format!(r"\b{}\b", regex::escape(&p)))
                .case_insensitive(true)
                .build()
                .map_err(|source| GuardError::Pattern {
                    category: "allowlist".to_owned(),
                    source,
                })?;
            phrases.push(AllowPhrase {
                re,
                chars: p.chars().count(),
            });
        }
        Ok(InjectionDetector {
            patterns,
            prefilter,
            keyword_masks,
            keywords,
            always_mask,
            allowlist: phrases,
        })
    }

    /// Number of compiled patterns.
    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }

    /// The prefilter keywords with the pattern bit set each one enables.
    pub(crate) fn keywords(&self) -> impl Iterator<Item = (&str, u128)> {
        self.keywords
            .iter()
            .map(String::as_str)
            .zip(self.keyword_masks.iter().copied())
    }

    /// The candidate pattern bit set for `hay` (exposed for profiling).
    #[doc(hidden)]
    pub fn candidates(&self, hay: &str) -> u128 {
        let mut mask = self.always_mask;
        for m in self.prefilter.find_overlapping_iter(hay) {
            mask |= self
                .keyword_masks
                .get(m.pattern().as_usize())
                .copied()
                .unwrap_or(0);
        }
        mask
    }

    fn allowlisted(&self, normalized: &str) -> bool {
        if self.allowlist.is_empty() {
            return false;
        }
        let input = normalized.trim().to_lowercase();
        let len = input.chars().count() as f64;
        self.allowlist
            .iter()
            .any(|p| (p.chars as f64) > 0.8 * len && p.re.is_match(&input))
    }

    /// Scan `text` (already truncated by the caller).
    pub fn scan(&self, text: &str) -> InjectionResult {
        self.scan_with(text, None, None)
    }

    /// Scan `text`; `original_mask`, when given, is the keyword candidate set of the
    /// original text computed by a shared prefilter pass; `stats`, when given, are the
    /// text's byte statistics (they let clean ASCII text skip normalisation and the base64
    /// scanner).
    pub(crate) fn scan_with(
        &self,
        text: &str,
        original_mask: Option<u128>,
        stats: Option<&TextStats>,
    ) -> InjectionResult {
        match self.find_patterns(text, original_mask, stats) {
            None => InjectionResult::clean("allowlist"),
            Some(found) => score_patterns(found.matches, "regex"),
        }
    }

    /// The matching patterns of `text` (arguments as for `scan_with`); `None` when the
    /// text is allowlisted.
    pub(crate) fn find_patterns(
        &self,
        text: &str,
        original_mask: Option<u128>,
        stats: Option<&TextStats>,
    ) -> Option<Found> {
        let norm: Normalized<'_> = match stats {
            Some(st) if st.ascii && !st.ascii_separator => unchanged(text),
            _ => normalize(text),
        };
        // The base64 scanner cannot match the original text (or an unchanged copy) when
        // the statistics found no run of 50.
        let no_b64_in_original = stats.is_some_and(|st| st.max_b64_run < 50);
        if self.allowlisted(&norm.text) {
            return None;
        }
        let original_mask = || match original_mask {
            Some(m) => m | self.always_mask,
            None => self.candidates(text),
        };
        // The matches, each with whether its pattern is context-dependent.
        let mut found: Vec<(PatternMatch, bool)> = Vec::new();
        let mask = if norm.changed() {
            self.candidates(&norm.text)
        } else {
            original_mask()
        };
        self.run(
            &norm.text,
            mask,
            MatchedIn::Normalized,
            &mut found,
            !norm.changed() && no_b64_in_original,
            |s, e| norm.map_span(s, e),
        );
        if norm.changed() {
            let mut seen: HashSet<(String, u64)> = found
                .iter()
                .map(|(p, _)| (p.category.clone(), p.weight.to_bits()))
                .collect();
            let mask = original_mask();
            let mut extra = Vec::new();
            self.run(
                text,
                mask,
                MatchedIn::Original,
                &mut extra,
                no_b64_in_original,
                |s, e| (s, e),
            );
            for (m, w) in extra {
                if seen.insert((m.category.clone(), m.weight.to_bits())) {
                    found.push((m, w));
                }
            }
        }
        Some(Found {
            only_weak: !found.is_empty() && found.iter().all(|(_, w)| *w),
            matches: found.into_iter().map(|(m, _)| m).collect(),
        })
    }

    fn run(
        &self,
        hay: &str,
        mask: u128,
        matched_in: MatchedIn,
        out: &mut Vec<(PatternMatch, bool)>,
        skip_b64: bool,
        map: impl Fn(usize, usize) -> (usize, usize),
    ) {
        let bytes = hay.as_bytes();
        let ascii = hay.is_ascii();
        for (i, p) in self.patterns.iter().enumerate() {
            if mask & (1u128 << i) == 0 && !p.always {
                continue;
            }
            if skip_b64 && matches!(p.matcher, Matcher::Base64Run) {
                continue;
            }
            if ascii && matches!(p.matcher, Matcher::UnicodeTags | Matcher::Invisible) {
                continue;
            }
            if let Some((s, e)) = p.matcher.find(bytes) {
                let (s, e) = snap(hay, s, e);
                let (os, oe) = map(s, e);
                let m = PatternMatch {
                    category: p.category.to_owned(),
                    weight: p.weight,
                    start: os,
                    end: oe,
                    matched_text: hay.get(s..e).unwrap_or_default().to_owned(),
                    matched_in,
                };
                out.push((m, p.weak));
            }
        }
    }
}

/// Widen a byte span to char boundaries.
fn snap(hay: &str, mut s: usize, mut e: usize) -> (usize, usize) {
    s = s.min(hay.len());
    e = e.min(hay.len()).max(s);
    while s > 0 && !hay.is_char_boundary(s) {
        s -= 1;
    }
    while e < hay.len() && !hay.is_char_boundary(e) {
        e += 1;
    }
    (s, e)
}

/// Score a set of matched patterns: max weight plus the distinct-category boost, capped.
pub fn score_patterns(patterns: Vec<PatternMatch>, method: &str) -> InjectionResult {
    if patterns.is_empty() {
        return InjectionResult::clean(method);
    }
    let max = patterns.iter().map(|p| p.weight).fold(0.0f64, f64::max);
    let mut cats: Vec<&str> = patterns.iter().map(|p| p.category.as_str()).collect();
    cats.sort_unstable();
    cats.dedup();
    let boost = match cats.len() {
        0 | 1 => 0.0,
        2 => 0.10,
        3 => 0.15,
        _ => 0.20,
    };
    let score = (max + boost).min(1.0);
    let severity = Severity::from_injection_score(score);
    let action: Action = severity.injection_action();
    InjectionResult {
        score,
        severity,
        action,
        method: method.to_owned(),
        patterns,
        learned_probability: None,
    }
}
