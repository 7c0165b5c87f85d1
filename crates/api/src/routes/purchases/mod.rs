pub mod create;
pub mod status;
