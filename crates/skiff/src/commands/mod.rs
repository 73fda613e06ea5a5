pub mod resources;
pub mod validate;
