pub mod burst;
pub mod dedup;
pub mod soldout;
pub mod sustained;
