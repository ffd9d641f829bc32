//! Leader election on a `coordination.k8s.io/v1` Lease for the components that run one
//! active replica (scheduler, controller-manager): the elector (`elector.rs`) and the
//! `--leader-elect*` flags both share (`flags.rs`).

mod elector;
mod flags;

pub use elector::{held_by_other, Attempt, LeaderElector, LeaderError, LeaseConfig};
pub use flags::{identity, LeaderElectionArgs, LeaseFlagsError};
