//! Verdict types shared by the detectors and serialised to JSON.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ParseEnumError;

/// What the guard wants done with a message. Ordered `allow < flag < warn < redact < block`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Nothing to do.
    #[default]
    Allow,
    /// Store the message flagged; the LLM still sees it.
    Flag,
    /// Warn the user (PII warn tier).
    Warn,
    /// Replace PII spans before the LLM sees the text.
    Redact,
    /// Do not send the message to the LLM.
    Block,
}

impl Action {
    /// All actions in ascending order.
    pub const ALL: [Action; 5] = [
        Action::Allow,
        Action::Flag,
        Action::Warn,
        Action::Redact,
        Action::Block,
    ];

    /// The lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Flag => "flag",
            Action::Warn => "warn",
            Action::Redact => "redact",
            Action::Block => "block",
        }
    }

    /// Severity implied by a PII tier action (block → critical, redact → high, warn → medium,
    /// flag → low, allow → none).
    pub fn pii_severity(self) -> Severity {
        match self {
            Action::Block => Severity::Critical,
            Action::Redact => Severity::High,
            Action::Warn => Severity::Medium,
            Action::Flag => Severity::Low,
            Action::Allow => Severity::None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| ParseEnumError {
                kind: "action",
                value: s.to_owned(),
            })
    }
}

/// Severity of a detection. Ordered `none < low < medium < high < critical`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Nothing detected.
    #[default]
    None,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// All severities in ascending order.
    pub const ALL: [Severity; 5] = [
        Severity::None,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::None => "none",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// The reference's injection score → severity table (inclusive lower bounds).
    pub fn from_injection_score(score: f64) -> Severity {
        if score >= 0.90 {
            Severity::Critical
        } else if score >= 0.70 {
            Severity::High
        } else if score >= 0.50 {
            Severity::Medium
        } else if score >= 0.30 {
            Severity::Low
        } else {
            Severity::None
        }
    }

    /// The injection action for a severity: critical/high → block, medium/low → flag,
    /// none → allow.
    pub fn injection_action(self) -> Action {
        match self {
            Severity::Critical | Severity::High => Action::Block,
            Severity::Medium | Severity::Low => Action::Flag,
            Severity::None => Action::Allow,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| ParseEnumError {
                kind: "severity",
                value: s.to_owned(),
            })
    }
}

/// Which copy of the text a pattern matched in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchedIn {
    /// The normalised copy (4.2 normalisation).
    Normalized,
    /// The original input.
    Original,
}

/// One matched injection pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatternMatch {
    /// Category name, e.g. `instruction_override`.
    pub category: String,
    /// The pattern's weight.
    pub weight: f64,
    /// Byte offset of the match start in the original input (mapped back from the
    /// normalised copy when possible).
    pub start: usize,
    /// Byte offset of the match end (exclusive) in the original input.
    pub end: usize,
    /// The matched text, as it appears in the copy it matched in.
    pub matched_text: String,
    /// Which copy of the text matched.
    pub matched_in: MatchedIn,
}

/// Result of the injection detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InjectionResult {
    /// Max weight plus category boost, capped at 1.0.
    pub score: f64,
    /// Severity from the score.
    pub severity: Severity,
    /// Action from the severity.
    pub action: Action,
    /// Detection method: `regex` normally, `allowlist` when the allowlist rule cleared the
    /// text, `error_failsafe` for the fail-closed verdict.
    pub method: String,
    /// Every matched pattern, in match order.
    pub patterns: Vec<PatternMatch>,
    /// Probability from the learned classifier, when it ran (not in the reference).
    #[serde(default)]
    pub learned_probability: Option<f64>,
}

impl InjectionResult {
    /// A clean result (score 0, no patterns).
    pub fn clean(method: &str) -> Self {
        InjectionResult {
            score: 0.0,
            severity: Severity::None,
            action: Action::Allow,
            method: method.to_owned(),
            patterns: Vec::new(),
            learned_probability: None,
        }
    }

    /// Whether the detector considers the text an injection (action ≠ allow).
    pub fn detected(&self) -> bool {
        self.action != Action::Allow
    }
}

/// One PII / credential detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PiiDetection {
    /// Category, e.g. `pii_iban_estonian`.
    pub entity_type: String,
    /// Human-readable name, e.g. `Estonian IBAN`.
    pub display_name: String,
    /// Byte offset of the match start in the input.
    pub start: usize,
    /// Byte offset of the match end (exclusive).
    pub end: usize,
    /// Confidence rounded to two decimals.
    pub confidence: f64,
    /// The tier of the pattern (block, redact or warn).
    pub action: Action,
    /// Masked match: first 4 chars + `***` (first 2 when the match has ≤ 8 chars).
    pub masked: String,
}

/// Result of the PII detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PiiResult {
    /// Highest confidence among detections (0 when none).
    pub score: f64,
    /// Severity from the action.
    pub severity: Severity,
    /// Highest tier among detections.
    pub action: Action,
    /// Accepted detections, in scan order.
    pub detections: Vec<PiiDetection>,
}

impl PiiResult {
    /// An empty result.
    pub fn empty() -> Self {
        PiiResult {
            score: 0.0,
            severity: Severity::None,
            action: Action::Allow,
            detections: Vec::new(),
        }
    }
}

/// The combined guard verdict for one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// `max(injection.action, pii.action)`.
    pub action: Action,
    /// `max(injection.severity, pii.severity)`.
    pub severity: Severity,
    /// `injection.action != allow || pii.action != allow`.
    pub is_flagged: bool,
    /// Injection detector result.
    pub injection: InjectionResult,
    /// PII detector result.
    pub pii: PiiResult,
    /// The text to store (4.3 redaction): the input unchanged when there are no PII
    /// detections, the blocked-credentials placeholder when PII blocks, otherwise the input
    /// with every detection span replaced by `[<entity_type>_REDACTED]`.
    pub redacted_text: String,
    /// The user-facing warning sentence for the PII tier; empty when none.
    pub warning: String,
}

impl Verdict {
    /// Combine an injection and a PII result (section 4.4).
    pub fn combine(
        injection: InjectionResult,
        pii: PiiResult,
        redacted_text: String,
        warning: String,
    ) -> Self {
        let action = injection.action.max(pii.action);
        let severity = injection.severity.max(pii.severity);
        let is_flagged = injection.action != Action::Allow || pii.action != Action::Allow;
        Verdict {
            action,
            severity,
            is_flagged,
            injection,
            pii,
            redacted_text,
            warning,
        }
    }

    /// The reference's synthetic fail-closed result: injection score 1.0, critical, block,
    /// method `error_failsafe`, no patterns, empty PII. The stored text is the raw input,
    /// which the caller still has; `redacted_text` is therefore left empty here.
    pub fn fail_closed() -> Self {
        Verdict::fail_closed_with_text(String::new())
    }

    /// [`Verdict::fail_closed`] with the raw input as `redacted_text` (the reference stores
    /// the message raw on this path).
    pub fn fail_closed_with_text(text: String) -> Self {
        let injection = InjectionResult {
            score: 1.0,
            severity: Severity::Critical,
            action: Action::Block,
            method: "error_failsafe".to_owned(),
            patterns: Vec::new(),
            learned_probability: None,
        };
        Verdict::combine(injection, PiiResult::empty(), text, String::new())
    }

    /// Whether this is the synthetic fail-closed verdict.
    pub fn is_fail_closed(&self) -> bool {
        self.injection.method == "error_failsafe"
    }

    /// `injection_categories` as the reference stores it on the message: the category of
    /// each matched pattern, in match order, duplicates kept. Empty when not flagged.
    pub fn injection_categories(&self) -> Vec<String> {
        if !self.is_flagged {
            return Vec::new();
        }
        self.injection
            .patterns
            .iter()
            .map(|p| p.category.clone())
            .collect()
    }

    /// `pii_categories` as the reference stores it on the message: the entity type of each
    /// detection, in scan order, duplicates kept. Empty when not flagged.
    pub fn pii_categories(&self) -> Vec<String> {
        if !self.is_flagged {
            return Vec::new();
        }
        self.pii
            .detections
            .iter()
            .map(|d| d.entity_type.clone())
            .collect()
    }

    /// Text to send to the LLM per section 3.3: the redacted text for `redact`, the raw
    /// input otherwise (`None` for `block`: no normal LLM call).
    pub fn llm_text<'a>(&'a self, raw: &'a str) -> Option<&'a str> {
        match self.action {
            Action::Block => None,
            Action::Redact => Some(&self.redacted_text),
            _ => Some(raw),
        }
    }
}
