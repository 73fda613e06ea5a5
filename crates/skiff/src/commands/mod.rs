pub mod get;
pub mod image;
pub mod logs;
pub mod resources;
pub mod run;
pub mod validate;
pub mod version;
