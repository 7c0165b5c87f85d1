//! Fault points for fault-injection tests; compiled into debug builds only.
//!
//! `FLASH_SALE_FAILPOINT=<name>` makes the process abort when it reaches the
//! point of that name, like a kill at the worst moment;
//! `FLASH_SALE_FAILPOINT=pause:<name>` makes it wait half a second there,
//! long enough for a client to give up; `panic:<name>` makes it panic
//! there (a bug at that point). Release builds have no failpoints.

#[cfg(debug_assertions)]
fn armed() -> Option<&'static str> {
    use std::sync::OnceLock;
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    ARMED
        .get_or_init(|| std::env::var("FLASH_SALE_FAILPOINT").ok())
        .as_deref()
}

/// Aborts the process if `FLASH_SALE_FAILPOINT` names this point.
#[cfg(debug_assertions)]
pub fn crash_if(name: &str) {
    if armed() == Some(name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn crash_if(_name: &str) {}

/// Waits half a second if `FLASH_SALE_FAILPOINT` is `pause:<this point>`.
#[cfg(debug_assertions)]
pub async fn pause_if(name: &str) {
    if armed().and_then(|a| a.strip_prefix("pause:")) == Some(name) {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub async fn pause_if(_name: &str) {}

/// Panics if `FLASH_SALE_FAILPOINT` is `panic:<this point>`.
#[cfg(debug_assertions)]
pub fn panic_if(name: &str) {
    if armed().and_then(|a| a.strip_prefix("panic:")) == Some(name) {
        panic!("failpoint {name}: panicking");
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn panic_if(_name: &str) {}
