//! Token quotas: the reference's calendar periods, lazy resets and the order
//! of checks (section 1.6 and 3.2 step 6), as pure functions the backends
//! apply inside a locked transaction.

use chrono::{Datelike, Duration, NaiveTime, TimeZone, Utc};

use crate::model::{Timestamp, from_micros};

/// A quota period, in the order the reference checks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaPeriod {
    Daily,
    Weekly,
    Monthly,
}

impl QuotaPeriod {
    pub const ALL: [QuotaPeriod; 3] = [
        QuotaPeriod::Daily,
        QuotaPeriod::Weekly,
        QuotaPeriod::Monthly,
    ];

    /// `Daily`, `Weekly`, `Monthly`: the word the reference's 409 starts with.
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaPeriod::Daily => "Daily",
            QuotaPeriod::Weekly => "Weekly",
            QuotaPeriod::Monthly => "Monthly",
        }
    }

    /// When the period containing `now` began (UTC): midnight, Monday
    /// midnight, or the first of the month at midnight.
    pub fn start(self, now: Timestamp) -> Timestamp {
        let day = now.date_naive();
        let first = match self {
            QuotaPeriod::Daily => day,
            QuotaPeriod::Weekly => {
                day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
            }
            QuotaPeriod::Monthly => day.with_day(1).unwrap_or(day),
        };
        Utc.from_utc_datetime(&first.and_time(NaiveTime::MIN))
    }

    fn index(self) -> usize {
        match self {
            QuotaPeriod::Daily => 0,
            QuotaPeriod::Weekly => 1,
            QuotaPeriod::Monthly => 2,
        }
    }
}

/// Limits per period, daily/weekly/monthly: `None` uses the system default,
/// `-1` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaLimits(pub [Option<i64>; 3]);

/// The system defaults (configuration), daily/weekly/monthly; `-1` unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaDefaults(pub [i64; 3]);

impl QuotaDefaults {
    pub const UNLIMITED: QuotaDefaults = QuotaDefaults([-1, -1, -1]);
}

/// What [`Store::reserve_tokens`](crate::Store::reserve_tokens) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// `tokens` were added to the user's usage: what was asked for, or less
    /// when the tightest limit had less left (then `capped`).
    Granted { tokens: i64, capped: bool },
    /// Nothing was reserved: a limit is reached, or misconfigured.
    Refused(QuotaCheck),
}

/// A user's quota row after lazy resets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenQuota {
    pub limits: QuotaLimits,
    /// Tokens used in the current day, week and month.
    pub usage: [i64; 3],
    pub reset_at: [Timestamp; 3],
}

/// The answer to "may this user start a generation?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaCheck {
    Allowed,
    /// The first period (daily, then weekly, then monthly) at or over its limit.
    Exceeded(QuotaPeriod),
    /// A limit below −1 (the reference answers 409 and asks to contact support).
    Misconfigured,
}

impl TokenQuota {
    /// Zeroes the counters whose last reset is before their period's start.
    /// Returns whether anything changed.
    pub(crate) fn reset_expired(&mut self, now: Timestamp) -> bool {
        let mut changed = false;
        for period in QuotaPeriod::ALL {
            let i = period.index();
            if self.reset_at[i] < period.start(now) {
                self.usage[i] = 0;
                self.reset_at[i] = now;
                changed = true;
            }
        }
        changed
    }

    /// Only users already at or over a limit are refused; a request may push
    /// usage past it.
    pub fn check(&self, defaults: QuotaDefaults) -> QuotaCheck {
        for period in QuotaPeriod::ALL {
            let i = period.index();
            let limit = self.limits.0[i].unwrap_or(defaults.0[i]);
            if limit < -1 {
                return QuotaCheck::Misconfigured;
            }
            if limit != -1 && limit - self.usage[i] <= 0 {
                return QuotaCheck::Exceeded(period);
            }
        }
        QuotaCheck::Allowed
    }

    /// Reserves up to `wanted` tokens: refused as [`TokenQuota::check`]
    /// refuses, else the smaller of `wanted` and what the tightest limit
    /// leaves is added to every counter. Two reservations made one after the
    /// other (under the row lock) can never together pass a limit.
    pub fn reserve(&mut self, defaults: QuotaDefaults, wanted: i64) -> Reservation {
        let check = self.check(defaults);
        if check != QuotaCheck::Allowed {
            return Reservation::Refused(check);
        }
        let left = QuotaPeriod::ALL
            .iter()
            .filter_map(|&period| self.remaining(period, defaults))
            .min();
        let wanted = wanted.max(0);
        let tokens = left.map_or(wanted, |left| wanted.min(left));
        for used in self.usage.iter_mut() {
            *used = used.saturating_add(tokens);
        }
        Reservation::Granted {
            tokens,
            capped: tokens < wanted,
        }
    }

    /// Whether any period has a limit: only then are answers reserved for.
    pub fn is_limited(&self, defaults: QuotaDefaults) -> bool {
        QuotaPeriod::ALL
            .iter()
            .any(|&period| self.remaining(period, defaults).is_some())
    }

    /// Tokens left in `period`, `None` when unlimited.
    pub fn remaining(&self, period: QuotaPeriod, defaults: QuotaDefaults) -> Option<i64> {
        let i = period.index();
        let limit = self.limits.0[i].unwrap_or(defaults.0[i]);
        (limit >= 0).then(|| (limit - self.usage[i]).max(0))
    }
}

/// The row shape both backends read.
#[derive(sqlx::FromRow)]
pub(crate) struct QuotaRow {
    daily_limit: Option<i64>,
    weekly_limit: Option<i64>,
    monthly_limit: Option<i64>,
    daily_usage: i64,
    weekly_usage: i64,
    monthly_usage: i64,
    daily_reset_at: i64,
    weekly_reset_at: i64,
    monthly_reset_at: i64,
}

pub(crate) const QUOTA_COLUMNS: &str = "daily_limit, weekly_limit, monthly_limit, daily_usage, \
     weekly_usage, monthly_usage, daily_reset_at, weekly_reset_at, monthly_reset_at";

impl QuotaRow {
    pub(crate) fn into_model(self) -> TokenQuota {
        TokenQuota {
            limits: QuotaLimits([self.daily_limit, self.weekly_limit, self.monthly_limit]),
            usage: [self.daily_usage, self.weekly_usage, self.monthly_usage],
            reset_at: [
                from_micros(self.daily_reset_at),
                from_micros(self.weekly_reset_at),
                from_micros(self.monthly_reset_at),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn period_starts() {
        // 2026-11-26 is a Thursday.
        let now = at("2026-11-26T15:30:00Z");
        assert_eq!(QuotaPeriod::Daily.start(now), at("2026-11-26T00:00:00Z"));
        assert_eq!(QuotaPeriod::Weekly.start(now), at("2026-11-23T00:00:00Z"));
        assert_eq!(QuotaPeriod::Monthly.start(now), at("2026-11-01T00:00:00Z"));
    }

    fn quota(limits: [Option<i64>; 3], usage: [i64; 3]) -> TokenQuota {
        let now = at("2026-11-26T15:30:00Z");
        TokenQuota {
            limits: QuotaLimits(limits),
            usage,
            reset_at: [now; 3],
        }
    }

    #[test]
    fn checks_in_order_and_only_at_the_limit() {
        let defaults = QuotaDefaults([-1, -1, -1]);
        let q = quota([None, None, Some(100)], [100, 100, 100]);
        assert_eq!(
            q.check(defaults),
            QuotaCheck::Exceeded(QuotaPeriod::Monthly)
        );
        let q = quota([Some(10), Some(10), Some(100)], [10, 10, 100]);
        assert_eq!(q.check(defaults), QuotaCheck::Exceeded(QuotaPeriod::Daily));
        let q = quota([None, None, Some(100)], [95, 95, 95]);
        assert_eq!(q.check(defaults), QuotaCheck::Allowed);
        assert_eq!(q.remaining(QuotaPeriod::Monthly, defaults), Some(5));
        assert_eq!(q.remaining(QuotaPeriod::Daily, defaults), None);
        let q = quota([None, None, None], [50, 50, 50]);
        assert_eq!(
            q.check(QuotaDefaults([-10, -1, -1])),
            QuotaCheck::Misconfigured
        );
        assert_eq!(
            q.check(QuotaDefaults([-1, 50, -1])),
            QuotaCheck::Exceeded(QuotaPeriod::Weekly)
        );
    }

    #[test]
    fn reservations_never_pass_the_tightest_limit() {
        let defaults = QuotaDefaults([200, -1, 1_000]);
        let mut q = quota([None; 3], [0, 0, 900]);
        assert!(q.is_limited(defaults));
        // The monthly limit leaves 100, the daily one 200.
        assert_eq!(
            q.reserve(defaults, 150),
            Reservation::Granted {
                tokens: 100,
                capped: true
            }
        );
        assert_eq!(q.usage, [100, 100, 1_000]);
        assert_eq!(
            q.reserve(defaults, 10),
            Reservation::Refused(QuotaCheck::Exceeded(QuotaPeriod::Monthly))
        );
        let mut q = quota([None; 3], [0, 0, 0]);
        assert_eq!(
            q.reserve(defaults, 50),
            Reservation::Granted {
                tokens: 50,
                capped: false
            }
        );
        assert_eq!(q.usage, [50, 50, 50]);
        // Thirty requests of 30 each stop at the limit.
        let granted: i64 = (0..30)
            .map(|_| match q.reserve(defaults, 30) {
                Reservation::Granted { tokens, .. } => tokens,
                Reservation::Refused(_) => 0,
            })
            .sum();
        assert_eq!(granted, 150);
        assert_eq!(q.usage[0], 200);
        let mut unlimited = quota([None; 3], [5, 5, 5]);
        assert!(!unlimited.is_limited(QuotaDefaults::UNLIMITED));
        assert_eq!(
            unlimited.reserve(QuotaDefaults::UNLIMITED, 40),
            Reservation::Granted {
                tokens: 40,
                capped: false
            }
        );
        let mut broken = quota([None; 3], [0, 0, 0]);
        assert_eq!(
            broken.reserve(QuotaDefaults([-3, -1, -1]), 1),
            Reservation::Refused(QuotaCheck::Misconfigured)
        );
    }

    #[test]
    fn lazy_resets() {
        let mut q = quota([None; 3], [5, 6, 7]);
        q.reset_at = [
            at("2026-11-25T23:00:00Z"),
            at("2026-11-23T01:00:00Z"),
            at("2026-10-31T12:00:00Z"),
        ];
        let now = at("2026-11-26T08:00:00Z");
        assert!(q.reset_expired(now));
        assert_eq!(q.usage, [0, 6, 0]);
        assert!(!q.reset_expired(now));
    }
}
