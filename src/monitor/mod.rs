//! Live monitoring: the event bus every change is published on.

pub mod alerts;
pub mod bus;

pub use bus::{EventBus, LiveEvent, Subscription};
