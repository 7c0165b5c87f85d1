//! Deciding a purchase: answered in-process while the sale is known sold
//! out, else by the purchase script; then queued if confirmed.

use chrono::{DateTime, Utc};
use domain::{LedgerEntry, OrderId, PurchaseOutcome, UserId};

use crate::{
    inventory::InventoryError,
    metrics::PurchaseResult,
    soldout,
    state::{AppState, ThreadPaths},
};

/// What a purchase came to, as the buyer is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Confirmed {
        order_id: OrderId,
        purchased_at: DateTime<Utc>,
    },
    Duplicate(LedgerEntry),
    SoldOut,
    TooManyAttempts,
    /// The sale is missing or partly lost in Redis; it is being re-armed.
    NotArmed,
    NotStarted,
    Ended,
}

impl Outcome {
    /// How `flash_sale_purchases_total` counts it.
    pub fn counted_as(&self) -> PurchaseResult {
        match self {
            Self::Confirmed { .. } => PurchaseResult::Confirmed,
            Self::Duplicate(_) => PurchaseResult::Duplicate,
            Self::SoldOut => PurchaseResult::SoldOut,
            Self::TooManyAttempts => PurchaseResult::TooManyAttempts,
            Self::NotArmed => PurchaseResult::NotArmed,
            Self::NotStarted | Self::Ended => PurchaseResult::NotActive,
        }
    }

    fn of_script(order_id: OrderId, reply: PurchaseOutcome) -> Self {
        match reply {
            PurchaseOutcome::Confirmed { purchased_at, .. } => Self::Confirmed {
                order_id,
                purchased_at,
            },
            PurchaseOutcome::Duplicate(entry) => Self::Duplicate(entry),
            PurchaseOutcome::SoldOut { .. } => Self::SoldOut,
            PurchaseOutcome::TooManyAttempts => Self::TooManyAttempts,
            PurchaseOutcome::NotArmed => Self::NotArmed,
            PurchaseOutcome::NotStarted => Self::NotStarted,
            PurchaseOutcome::Ended => Self::Ended,
        }
    }
}

impl From<soldout::Answer> for Outcome {
    fn from(answer: soldout::Answer) -> Self {
        match answer {
            soldout::Answer::Ended => Self::Ended,
            soldout::Answer::SoldOut => Self::SoldOut,
        }
    }
}

/// The outcome of `user`'s purchase when this replica knows it without
/// asking Redis: the sale is not armed, or known sold out (see
/// [`soldout`]). Such an answer changes nothing, so it needs no task of
/// its own.
pub fn known(state: &AppState, user: &UserId) -> Option<Outcome> {
    let Some(sale) = state.sale.get() else {
        return Some(Outcome::NotArmed);
    };
    state.sold_out.answer(user, &sale.window).map(Outcome::from)
}

/// Decides `user`'s purchase; a confirmed one is handed to the order
/// pusher, and the answer brought to this replica's view (the stock it
/// shows, the sold-out freeze, re-arming a lost sale), by the thread's
/// batcher before this returns. The batcher does both whether or not this
/// future is still awaited: a buyer who hangs up mid-purchase changes
/// nothing about what Redis decided.
pub async fn decide(
    state: &AppState,
    paths: &ThreadPaths,
    user: UserId,
) -> Result<Outcome, InventoryError> {
    if let Some(outcome) = known(state, &user) {
        return Ok(outcome);
    }
    // The window is judged in the script, on Redis's clock: replicas whose
    // own clocks disagree still agree on whether the sale is open.
    let order_id = OrderId::new();
    // Decided in the next batch of this thread's purchases.
    let reply = paths.purchases.decide(user, order_id).await?;
    let outcome = Outcome::of_script(order_id, reply);
    if let Outcome::Confirmed { .. } = outcome {
        tracing::Span::current().record("order.id", tracing::field::display(order_id));
    }
    Ok(outcome)
}
