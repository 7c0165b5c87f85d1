//! The api's integration tests: one binary, so linking happens once.

mod arming;
mod cluster;
mod concurrency;
mod events;
mod faults;
mod health;
mod helpers;
mod limits;
mod observability;
mod openapi;
mod partial_loss;
mod persistence;
mod purchases;
mod redis_cluster;
mod sale_status;
mod support;
mod validation;
