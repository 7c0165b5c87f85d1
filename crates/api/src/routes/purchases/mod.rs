mod create;
mod status;

pub use create::create;
pub use status::status;
