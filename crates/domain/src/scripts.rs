//! The Lua scripts of a sale and their typed outcomes.
//!
//! The scripts answer with short strings (`OK|...`, `SOLD_OUT`, ...) so that
//! parsing them is pure and tested here, whatever Redis client runs them.

use chrono::{DateTime, Utc};

use crate::{time, LedgerEntry, OrderId, SaleWindow};

/// Source of `lua/purchase.lua`; its header states KEYS, ARGV and replies.
pub const PURCHASE_LUA: &str = include_str!("../lua/purchase.lua");

/// Source of `lua/arm.lua`; its header states KEYS, ARGV and replies.
pub const ARM_LUA: &str = include_str!("../lua/arm.lua");

/// Source of `lua/reading.lua`: stock and Redis's clock.
pub const READING_LUA: &str = include_str!("../lua/reading.lua");

/// The stock (`None`: not armed) at Redis's `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    pub stock: Option<i64>,
    pub now: DateTime<Utc>,
}

impl Reading {
    pub fn parse(reply: &str) -> Result<Self, ScriptReplyError> {
        let bad = || ScriptReplyError(reply.to_owned());
        let (stock, millis) = reply.split_once('|').ok_or_else(bad)?;
        let stock = match stock {
            "" => None,
            raw => Some(raw.parse::<i64>().map_err(|_| bad())?),
        };
        let now = millis
            .parse::<i64>()
            .ok()
            .and_then(time::from_millis)
            .ok_or_else(bad)?;
        Ok(Self { stock, now })
    }
}

/// A reply a script should never give: a bug or a foreign script under our SHA.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected script reply {0:?}")]
pub struct ScriptReplyError(pub String);

/// What the purchase script decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurchaseOutcome {
    /// Stock taken and ledger written for the order id the api passed in.
    Confirmed {
        purchased_at: DateTime<Utc>,
        /// Stock remaining right after this purchase.
        stock_left: u64,
    },
    /// The user bought before; this is their order.
    Duplicate(LedgerEntry),
    /// No stock left. The buyer count and Redis's clock let a replica answer
    /// later refusals itself for as long as neither moves.
    SoldOut {
        buyers: u64,
        now: DateTime<Utc>,
    },
    TooManyAttempts,
    /// The sale is missing in Redis, or only partly there: never "sold out".
    NotArmed,
    /// Before the window, by Redis's clock.
    NotStarted,
    /// After the window, by Redis's clock.
    Ended,
}

impl PurchaseOutcome {
    /// The purchase script's replies to a batch: its first element (Redis's
    /// clock, and the stock and ledger size after the batch), then one per
    /// purchase, in order.
    pub fn parse_batch<S: AsRef<str>>(replies: &[S]) -> Result<Vec<Self>, ScriptReplyError> {
        let Some((first, purchases)) = replies.split_first() else {
            return Err(ScriptReplyError(String::new()));
        };
        let first = first.as_ref();
        let bad_first = || ScriptReplyError(first.to_owned());
        let mut fields = first.split('|');
        let (Some(millis), Some(stock), Some(buyers), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(bad_first());
        };
        let now = millis
            .parse::<i64>()
            .ok()
            .and_then(time::from_millis)
            .ok_or_else(bad_first)?;
        // Empty when the sale was not read whole (then no purchase is OK or
        // SOLD_OUT).
        let after = match (stock, buyers) {
            ("", "") => None,
            (stock, buyers) => Some((
                stock.parse::<u64>().map_err(|_| bad_first())?,
                buyers.parse::<u64>().map_err(|_| bad_first())?,
            )),
        };
        // Each OK left the stock after the batch plus the OKs after it.
        let mut later_oks = purchases.iter().filter(|r| r.as_ref() == "OK").count() as u64;
        purchases
            .iter()
            .map(|reply| {
                let reply = reply.as_ref();
                let bad = || ScriptReplyError(reply.to_owned());
                match (reply, after) {
                    ("OK", Some((stock, _))) => {
                        later_oks -= 1;
                        Ok(Self::Confirmed {
                            purchased_at: now,
                            stock_left: stock + later_oks,
                        })
                    }
                    ("SOLD_OUT", Some((_, buyers))) => Ok(Self::SoldOut { buyers, now }),
                    ("OK" | "SOLD_OUT", None) => Err(bad_first()),
                    _ => Self::parse_refusal(reply).ok_or_else(bad),
                }
            })
            .collect()
    }

    /// A reply that needs nothing from the batch's first element.
    fn parse_refusal(reply: &str) -> Option<Self> {
        match reply.split_once('|') {
            Some(("DUPLICATE", entry)) => LedgerEntry::parse(entry).ok().map(Self::Duplicate),
            Some(_) => None,
            None => match reply {
                "TOO_MANY_ATTEMPTS" => Some(Self::TooManyAttempts),
                "NOT_ARMED" => Some(Self::NotArmed),
                "NOT_STARTED" => Some(Self::NotStarted),
                "ENDED" => Some(Self::Ended),
                _ => None,
            },
        }
    }
}

/// What the arm script may do (`lua/arm.lua` explains each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArmMode {
    /// Write nothing: the sale as Redis holds it, if whole.
    Look,
    /// Make the sale whole from every order PostgreSQL holds; a missing
    /// meta is written from `total` and `window` (the replica's settings).
    Arm { total: u64, window: SaleWindow },
    /// Put persisted orders back into a whole sale's ledger, out of its stock.
    Merge,
}

/// What the arm script found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArmOutcome {
    /// The sale as Redis now holds it, whole.
    Whole(ArmedSale),
    /// The sale is missing or partly lost, and the mode did not allow
    /// writing it; nothing was written.
    NotArmed,
}

/// A whole sale, as the arm script left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArmedSale {
    /// True when this call made the sale whole; false when it was already.
    pub armed_now: bool,
    pub total_stock: u64,
    pub window: SaleWindow,
    /// Buyers put back into the ledger by this call.
    pub restored: u64,
}

impl ArmOutcome {
    pub fn parse(reply: &str) -> Result<Self, ScriptReplyError> {
        let bad = || ScriptReplyError(reply.to_owned());
        if reply == "NOT_ARMED" {
            return Ok(Self::NotArmed);
        }
        let mut parts = reply.split('|');
        let armed_now = match parts.next() {
            Some("ARMED") => true,
            Some("EXISTING") => false,
            _ => return Err(bad()),
        };
        let mut number = || -> Result<i64, ScriptReplyError> {
            parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)
        };
        let total_stock = u64::try_from(number()?).map_err(|_| bad())?;
        let starts_at = time::from_millis(number()?).ok_or_else(bad)?;
        let ends_at = time::from_millis(number()?).ok_or_else(bad)?;
        let restored = u64::try_from(number()?).map_err(|_| bad())?;
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Self::Whole(ArmedSale {
            armed_now,
            total_stock,
            window: SaleWindow { starts_at, ends_at },
            restored,
        }))
    }
}

/// Arguments of the arm script: the mode, with the sale as configured for
/// arming, and (merge only) the orders to put back. Arming takes the orders
/// that stand from a staging hash instead ([`ARM_LUA`]'s KEYS[4]).
pub fn arm_args(mode: ArmMode, ledger: &[(String, LedgerEntry)]) -> Vec<String> {
    let mut args = match mode {
        ArmMode::Look => vec![
            "look".to_owned(),
            String::new(),
            String::new(),
            String::new(),
        ],
        ArmMode::Merge => vec![
            "merge".to_owned(),
            String::new(),
            String::new(),
            String::new(),
        ],
        ArmMode::Arm { total, window } => vec![
            "arm".to_owned(),
            total.to_string(),
            window.starts_at.timestamp_millis().to_string(),
            window.ends_at.timestamp_millis().to_string(),
        ],
    };
    if mode == ArmMode::Merge {
        for (user, entry) in ledger {
            args.push(user.clone());
            args.push(entry.encode());
        }
    }
    args
}

/// Arguments of the purchase script for a batch of `(user, order)`
/// purchases, decided in that order (the keys are the stock, the ledger,
/// the meta and then each purchase's attempt counter).
/// `replicated`: the caller WAITs for replicas after the call, so the
/// script always writes (see the script's header).
pub fn purchase_args<'a>(
    max_attempts: u32,
    window_seconds: u64,
    window: &SaleWindow,
    replicated: bool,
    purchases: impl ExactSizeIterator<Item = (&'a str, OrderId)>,
) -> Vec<String> {
    let mut args = Vec::with_capacity(5 + 2 * purchases.len());
    args.extend([
        max_attempts.to_string(),
        window_seconds.to_string(),
        window.starts_at.timestamp_millis().to_string(),
        window.ends_at.timestamp_millis().to_string(),
        if replicated { "1" } else { "0" }.to_owned(),
    ]);
    let mut id = [0; 36];
    for (user, order) in purchases {
        args.push(user.to_owned());
        args.push(order.encode(&mut id).to_owned());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purchase_replies_map_to_outcomes() {
        let at = time::from_millis(1_772_359_200_123).expect("in range");
        let order = OrderId::new();
        let duplicate = format!("DUPLICATE|{order}|1772359200123");
        let replies = [
            "1772359200123|39|61",
            "OK",
            duplicate.as_str(),
            "TOO_MANY_ATTEMPTS",
            "OK",
            "OK",
        ];
        assert_eq!(
            PurchaseOutcome::parse_batch(&replies),
            Ok(vec![
                PurchaseOutcome::Confirmed {
                    purchased_at: at,
                    stock_left: 41
                },
                PurchaseOutcome::Duplicate(LedgerEntry {
                    order_id: order,
                    purchased_at: at
                }),
                PurchaseOutcome::TooManyAttempts,
                PurchaseOutcome::Confirmed {
                    purchased_at: at,
                    stock_left: 40
                },
                PurchaseOutcome::Confirmed {
                    purchased_at: at,
                    stock_left: 39
                },
            ])
        );
        assert_eq!(
            PurchaseOutcome::parse_batch(&["1772359200123|0|7", "OK", "SOLD_OUT"]),
            Ok(vec![
                PurchaseOutcome::Confirmed {
                    purchased_at: at,
                    stock_left: 0
                },
                PurchaseOutcome::SoldOut { buyers: 7, now: at },
            ])
        );
        assert_eq!(
            PurchaseOutcome::parse_batch(&["1772359200123||", "NOT_ARMED", "NOT_ARMED"]),
            Ok(vec![PurchaseOutcome::NotArmed; 2])
        );
        assert_eq!(
            PurchaseOutcome::parse_batch(&["1772359200123||", "NOT_STARTED", "ENDED"]),
            Ok(vec![PurchaseOutcome::NotStarted, PurchaseOutcome::Ended])
        );
    }

    #[test]
    fn unexpected_purchase_replies_are_errors_not_outcomes() {
        for bad in [
            "",
            "1",
            "OK|x",
            "DUPLICATE|junk",
            "SOLD_OUT|1",
            "sold_out",
            "NOT_ARMED|1",
        ] {
            assert!(
                PurchaseOutcome::parse_batch(&["1772359200123|5|5", bad]).is_err(),
                "{bad}"
            );
        }
        for bad_first in [
            "",
            "x|1|1",
            "1772359200123|1",
            "1772359200123|1|",
            "1772359200123|-1|1",
            "1|2|3|4",
        ] {
            assert!(
                PurchaseOutcome::parse_batch(&[bad_first, "TOO_MANY_ATTEMPTS"]).is_err(),
                "{bad_first}"
            );
        }
        // OK and SOLD_OUT need the stock and ledger size after the batch.
        for needs_them in ["OK", "SOLD_OUT"] {
            assert!(PurchaseOutcome::parse_batch(&["1772359200123||", needs_them]).is_err());
        }
        assert!(PurchaseOutcome::parse_batch::<&str>(&[]).is_err());
    }

    #[test]
    fn arm_replies_map_to_outcomes() {
        let Ok(ArmOutcome::Whole(armed)) = ArmOutcome::parse("ARMED|100|1000|2000|3") else {
            panic!("a whole sale");
        };
        assert!(armed.armed_now);
        assert_eq!(armed.total_stock, 100);
        assert_eq!(armed.window.starts_at.timestamp_millis(), 1000);
        assert_eq!(armed.window.ends_at.timestamp_millis(), 2000);
        assert_eq!(armed.restored, 3);
        let Ok(ArmOutcome::Whole(existing)) = ArmOutcome::parse("EXISTING|5|1000|2000|0") else {
            panic!("a whole sale");
        };
        assert!(!existing.armed_now);
        assert_eq!(ArmOutcome::parse("NOT_ARMED"), Ok(ArmOutcome::NotArmed));
        for bad in [
            "",
            "ARMED",
            "EXISTING||||",
            "ARMED|-1|0|0|0",
            "ARMED|1|0|0",
            "ARMED|1|0|0|0|0",
            "NEW|1|2|3|0",
        ] {
            assert!(ArmOutcome::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn readings_parse_armed_and_unarmed_sales() {
        let at = time::from_millis(1_772_359_200_123).expect("in range");
        assert_eq!(
            Reading::parse("42|1772359200123"),
            Ok(Reading {
                stock: Some(42),
                now: at
            })
        );
        assert_eq!(
            Reading::parse("|1772359200123"),
            Ok(Reading {
                stock: None,
                now: at
            })
        );
        for bad in ["", "42", "x|1", "1|x"] {
            assert!(Reading::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scripts_open_with_a_header_that_states_keys_argv_and_replies() {
        for script in [PURCHASE_LUA, ARM_LUA, READING_LUA] {
            assert!(script.starts_with("--"));
            let header: String = script.lines().take_while(|l| l.starts_with("--")).collect();
            let code_uses_argv = script
                .lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .any(|l| l.contains("ARGV"));
            for word in ["KEYS[1]", "Returns"] {
                assert!(header.contains(word), "missing {word}");
            }
            assert_eq!(header.contains("ARGV[1]"), code_uses_argv);
        }
    }
}
