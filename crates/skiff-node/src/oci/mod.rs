pub mod config;
pub mod user;
