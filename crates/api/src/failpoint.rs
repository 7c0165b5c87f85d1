//! Crash points for fault-injection tests; compiled into debug builds only.
//!
//! `FLASH_SALE_FAILPOINT=<name>` makes the process abort when it reaches the
//! point of that name, like a kill at the worst moment. Release builds have
//! no failpoints at all.

/// Aborts the process if `FLASH_SALE_FAILPOINT` names this point.
#[cfg(debug_assertions)]
pub fn crash_if(name: &str) {
    use std::sync::OnceLock;
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    let armed = ARMED.get_or_init(|| std::env::var("FLASH_SALE_FAILPOINT").ok());
    if armed.as_deref() == Some(name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn crash_if(_name: &str) {}
