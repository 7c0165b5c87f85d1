//! Request limits: per client address in-process (actix-governor); the
//! per-user attempt limit lives in the purchase script, global across replicas.

pub mod ip;
