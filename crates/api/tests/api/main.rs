//! The api's integration tests: one binary, so linking happens once.

mod arming;
mod batches;
mod buyer_auth;
mod cluster;
mod concurrency;
mod cors;
mod events;
mod failover;
mod faults;
mod health;
mod helpers;
mod limits;
mod metrics_port;
mod observability;
mod openapi;
mod partial_loss;
mod persistence;
mod purchases;
mod redis_cluster;
mod replicas;
mod sale_status;
mod start_order;
mod stream_cap;
mod support;
mod user_ids;
mod validation;
