//! The flash-sale api: accepts purchases, runs the inventory script in Redis,
//! queues order jobs. `main.rs` is thin; tests start [`Application`] on port 0.

pub mod arming;
pub mod auth;
pub mod batch;
pub mod body;
pub mod clock;
pub mod db;
pub mod error;
pub mod failpoint;
pub mod feed;
pub mod inventory;
pub mod limits;
pub mod metrics;
pub mod observe;
pub mod openapi;
pub mod purchase;
pub mod queue;
pub mod recent;
mod routes;
pub mod sale;
pub mod settings;
pub mod soldout;
pub mod startup;
pub mod state;
pub mod status;
pub mod validation;

pub use settings::Settings;
pub use startup::{Application, Stopper};
