pub mod resources;
pub mod run;
pub mod validate;
