//! One module per verb (or family of verbs).

pub mod apply;
pub mod cluster;
pub mod delete;
pub mod describe;
pub mod edit;
pub mod get;
pub mod info;
pub mod logs;
pub mod metadata;
pub mod node;
pub mod rollout;
pub mod scale;
pub mod watch;
pub mod write;
