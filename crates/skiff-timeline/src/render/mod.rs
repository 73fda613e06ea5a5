//! Renderings of a [`Timeline`](crate::Timeline): the terminal (`text`), SVG and HTML, and
//! the axis they share.

pub mod axis;
pub mod html;
pub mod svg;
pub mod text;
