//! Per-step retry policy: `retries`, `retry_delay` (doubled after each failed attempt) and
//! `timeout`, set under `[steps."layer.name"]` for any step (ingest, SQL, ALS) or in a SQL file's
//! header.
//!
//! ```toml
//! [steps."bronze.ratings"]
//! retries = 3            # attempts after the first
//! retry_delay = "2s"     # before the 1st retry; 4s before the 2nd, 8s before the 3rd
//! timeout = "10m"        # each attempt; the attempt is cancelled and counts as failed
//! ```
//!
//! Invariant: an attempt that fails or times out has committed nothing (each step commits only at
//! its end, and a Delta commit is atomic), so a retry starts from the same tables.

use std::time::Duration;

use toml::Table;

/// The keys this module owns in a step's settings table.
pub const KEYS: [&str; 3] = ["retries", "retry_delay", "timeout"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryPolicy {
    pub retries: u32,
    pub retry_delay: Duration,
    pub timeout: Option<Duration>,
}

impl RetryPolicy {
    /// Takes the policy's keys out of `settings` (the rest belongs to the step kind).
    pub fn take_from(settings: &mut Table) -> Result<RetryPolicy, String> {
        let mut policy = RetryPolicy {
            retries: 0,
            retry_delay: Duration::from_secs(1),
            timeout: None,
        };
        if let Some(value) = settings.remove("retries") {
            policy.retries = value
                .as_integer()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n <= 100)
                .ok_or_else(|| format!("retries = {value}: expected a count from 0 to 100"))?;
        }
        if let Some(value) = settings.remove("retry_delay") {
            policy.retry_delay = duration("retry_delay", &value)?;
        }
        if let Some(value) = settings.remove("timeout") {
            let timeout = duration("timeout", &value)?;
            if timeout.is_zero() {
                return Err("timeout must be above 0".into());
            }
            policy.timeout = Some(timeout);
        }
        Ok(policy)
    }

    /// The wait before retry number `retry` (1-based): `retry_delay * 2^(retry-1)`, at most an hour.
    pub fn delay_before(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.retry_delay
            .saturating_mul(factor)
            .min(Duration::from_secs(3600))
    }
}

/// `"500ms"`, `"2s"`, `"10m"` (humantime) or a number of seconds.
fn duration(key: &str, value: &toml::Value) -> Result<Duration, String> {
    match value {
        toml::Value::String(text) => humantime::parse_duration(text)
            .map_err(|e| format!("{key} = {text:?}: {e} (e.g. \"500ms\", \"2s\", \"10m\")")),
        toml::Value::Integer(n) if *n >= 0 => Ok(Duration::from_secs(*n as u64)),
        toml::Value::Float(f) if *f >= 0.0 && f.is_finite() => Ok(Duration::from_secs_f64(*f)),
        other => Err(format!(
            "{key} = {other}: expected a duration such as \"2s\""
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_taken_out_and_parsed() {
        let mut settings: Table =
            "retries = 2\nretry_delay = \"250ms\"\ntimeout = 30\nmaterialization = \"append\""
                .parse()
                .unwrap();
        let policy = RetryPolicy::take_from(&mut settings).unwrap();
        assert_eq!(policy.retries, 2);
        assert_eq!(policy.retry_delay, Duration::from_millis(250));
        assert_eq!(policy.timeout, Some(Duration::from_secs(30)));
        assert_eq!(settings.len(), 1, "other keys stay for the step kind");
        assert_eq!(policy.delay_before(1), Duration::from_millis(250));
        assert_eq!(
            policy.delay_before(3),
            Duration::from_secs(1),
            "doubles each time"
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        for (text, key) in [
            ("retries = -1", "retries"),
            ("retry_delay = \"soon\"", "retry_delay"),
            ("timeout = \"0s\"", "timeout"),
        ] {
            let mut settings: Table = text.parse().unwrap();
            let err = RetryPolicy::take_from(&mut settings).unwrap_err();
            assert!(err.contains(key), "{text}: {err}");
        }
    }
}
