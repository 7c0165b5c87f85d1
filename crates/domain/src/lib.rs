//! Types shared by the api and the order worker.
//!
//! Everything both services must agree on lives here: the ids, the job
//! payload the api produces and the worker consumes, the Redis key layout of
//! a sale, the Lua scripts and their typed outcomes, and the sale window.
//! No web framework and no database driver. The Redis clients both binaries
//! build the same way sit behind features (`queue`: apalis-redis's storage,
//! `inventory`: fred), so a crate that needs neither gets no client.

pub mod config;
pub mod ids;
#[cfg(feature = "inventory")]
pub mod inventory_redis;
pub mod job;
pub mod keys;
pub mod ledger;
#[cfg(feature = "queue")]
pub mod queue;
#[cfg(feature = "queue")]
mod queue_connection;
pub mod scripts;
#[cfg(feature = "signals")]
pub mod signals;
pub mod telemetry;
pub mod time;
pub mod window;

pub use ids::{OrderId, SaleId, SaleIdError, UserId, UserIdError};
pub use job::{PersistOrder, PersistOrders};
pub use keys::{SaleKeys, Scanned};
pub use ledger::LedgerEntry;
pub use scripts::{ArmMode, ArmOutcome, ArmedSale, PurchaseOutcome, Reading, ScriptReplyError};
pub use window::{SalePhase, SaleWindow};
