//! The call-center control plane: departments, agents, the ACD (queues and assignment),
//! transfers and analytics. It lives beside the audio loop: it sends commands to call actors
//! (through [`control::CallControl`]) and hears from them through the ACD's bounded channel.

pub mod acd;
pub mod analytics;
pub mod control;
pub mod handle;
pub mod memory;
pub mod model;
pub mod repo;

pub use acd::{Acd, AcdConfig, AcdError, AcdHandle};
pub use control::{CallControl, CallOrder, RegistryControl};
pub use model::*;
pub use repo::CenterRepo;
